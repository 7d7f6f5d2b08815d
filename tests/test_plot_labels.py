"""Plots: the theory legend sits outside the curves with the figures' symbols (λ, ε, γ); the training
plot says that crosses are measured and lines theory."""

import jax.numpy as jnp
import numpy as np
from cli_helpers import run_cli

from daedyn import train
from daedyn.figures import plot_closed_form, plot_training_run


def _no_overlap(ax):
    fig = ax.figure
    fig.canvas.draw()
    leg = ax.get_legend().get_window_extent()
    box = ax.get_window_extent()
    inside_figure = leg.x1 <= fig.bbox.x1 + 1 and leg.y0 >= fig.bbox.y0 - 1
    return (leg.x0 >= box.x1 or leg.x1 <= box.x0 or leg.y0 >= box.y1 or leg.y1 <= box.y0) and inside_figure


def test_theory_plot_legend_outside_the_axes_with_greek_labels(tmp_path, capsys, monkeypatch):
    from daedyn.cli import theory as cli_theory

    seen = {}
    monkeypatch.setattr(cli_theory, "save_plot", lambda fig, path: seen.setdefault("fig", fig))
    rc, _, err = run_cli(["theory", "--lam", "1,2", "--eps", "0,1,5", "--gamma", "0,0.1", "--plot",
                          str(tmp_path / "w.png")], capsys)
    assert rc == 0, err
    ax = seen["fig"].axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels[0] == "λ=1 ε=0 γ=0" and len(labels) == 12 and not any("lam" in s for s in labels)
    assert _no_overlap(ax)


def test_closed_form_legend_never_covers_the_curves():
    ax = plot_closed_form(np.linspace(0, 1, 5), np.ones((5, 3)), ["a", "b", "c"])
    assert _no_overlap(ax)


def test_training_plot_says_crosses_are_measured_and_lines_theory():
    r = np.random.default_rng(0)
    d, h, t = 4, 2, 3
    params = {"w1": jnp.asarray(r.random((h, d)) * 0.01, jnp.float32),
              "w2": jnp.asarray(r.random((d, h)) * 0.01, jnp.float32)}
    result = train.TrainResult(t=jnp.arange(t) * 10, mapping=jnp.asarray(r.random((t, d)), jnp.float32),
                               singular_values=jnp.ones((t, h)), weight_norm=jnp.ones(t),
                               train_loss=jnp.ones(t),
                               heldout_loss=None, params=params, init_params=params,
                               eigvals=jnp.array([4.0, 3.0, 2.0, 1.0]), n=8, tau=jnp.float32(100.0),
                               eps=jnp.float32(0.0), gamma=jnp.float32(0.0))
    ax = plot_training_run(result, directions=[0, 1], eigvecs=jnp.eye(d), hidden=h)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["j = 0", "j = 1", "measured (trained network)", "theory (small-init closed form)"]
    marker = ax.get_legend().legend_handles[2]
    assert marker.get_marker() == "x" and marker.get_linestyle() == "None"
    assert _no_overlap(ax)
