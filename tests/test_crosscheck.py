"""Tests of daedyn.crosscheck (one configuration four ways) and the ``daedyn crosscheck`` command."""

import argparse
import json

import jax.random as jr
import numpy as np
import pytest

from daedyn import figures
from daedyn.cli import crosscheck as cli_crosscheck
from daedyn.crosscheck import CrossCheck, Tolerances, crosscheck

WAYS = ("closed", "scalar", "matrix", "train")  # the four computations compared


@pytest.fixture(scope="module")
def data():
    """N = 64, D = 6, spread-out columns (not centred, as the paper's images)."""
    return np.asarray(jr.uniform(jr.key(0), (64, 6))) * np.array([1.0, 0.7, 0.5, 0.35, 0.25, 0.15])


def test_all_four_agree_on_a_small_balanced_configuration():
    """Orthogonal (balanced, decoupled) start, alpha lam / N <= 0.01: the recursions coincide to
    float32 round-off and the flow is within its Euler error."""
    r = crosscheck(eigvals=[4.0, 2.0, 1.0], n=4, alpha=0.01, hidden=2, epochs=2000, save_every=10,
                   init="orthogonal", init_scale=0.01)
    assert isinstance(r, CrossCheck) and r.verdict and not r.failures
    assert set(r.mapping) == set(WAYS) and len(r.pairs) == 6
    assert r.mapping["train"].shape == (201, 2) and r.checked.all()
    for p in ("scalar-matrix", "scalar-train", "matrix-train"):  # the same recursion three ways
        assert np.max(r.pairs[p]["max"]) < 1e-5, p
    # Flow vs one-step-per-epoch recursion: learning-time error about alpha lam / N (<= 1%).
    assert np.all(r.pairs["closed-scalar"]["time_rel"] < 0.01)
    np.testing.assert_allclose(r.alpha_lam_over_n, [0.01, 0.005], rtol=1e-6)
    np.testing.assert_allclose(r.fixed_point, [1.0, 1.0], rtol=1e-6)
    d = json.loads(json.dumps(r.to_dict()))
    assert d["verdict"] == "agree" and d["settings"]["source"] == "spectrum"


def test_random_start_on_data_with_noise_agrees(data):
    """The network's own random start (H = D), marginalised noise: all four agree on real data."""
    r = crosscheck(data, alpha=0.05, hidden=6, epochs=4000, save_every=20, init="random",
                   init_scale=1e-4, eps=0.5)
    assert r.verdict, r.failures
    assert r.settings["source"] == "data" and r.settings["n"] == 64
    assert np.max(r.pairs["matrix-train"]["max"]) < 1e-4  # the same gradient descent
    assert np.isfinite(r.times["train"][:2]).all()


def test_report_says_when_a_run_is_outside_the_measured_regime():
    """docs/crosscheck.md, 'Where the prediction holds': a random start above init 1e-3, alpha lam_0 / N
    above 0.2 or H below 16 is named in settings["warnings"]; the decoupled start never is."""
    r = crosscheck(eigvals=[4.0, 2.0, 1.0], n=4, alpha=0.4, hidden=2, epochs=10, save_every=1,
                   init="random", init_scale=0.05)
    reg = r.settings["measured_regime"]
    assert not reg["inside"] and len(reg["outside"]) == 3  # init 0.05, alpha lam_0 / N = 0.4, H = 2
    notes = [w for w in r.settings["warnings"] if "outside the measured regime" in w]
    assert len(notes) == 1 and "init_scale = 0.05" in notes[0]
    r = crosscheck(eigvals=[4.0, 2.0, 1.0], n=4, alpha=0.4, hidden=2, epochs=10, save_every=1,
                   init="orthogonal", init_scale=0.05)
    assert r.settings["measured_regime"]["inside"]
    assert not any("measured regime" in w for w in r.settings["warnings"])


def test_unstable_step_gives_a_failing_verdict():
    """alpha lam / N = 1.2 > 1: gradient descent settles in a 2-cycle the flow cannot follow."""
    r = crosscheck(eigvals=[4.0, 2.0, 1.0], n=4, alpha=1.2, hidden=2, epochs=100, save_every=1,
                   init="orthogonal", init_scale=0.01)
    assert not r.verdict
    assert any(f.startswith("closed vs scalar") for f in r.failures)
    assert any("UnstableStepWarning" in w for w in r.settings["warnings"])
    w = r.mapping["scalar"][-4:, 0]  # the 2-cycle: alternating values around w* = 1
    assert abs(w[0] - w[2]) < 1e-4 and abs(w[0] - w[1]) > 0.1
    np.testing.assert_allclose(r.mapping["scalar"][-10:, 0], r.mapping["train"][-10:, 0], atol=1e-4)


def test_tolerances_are_what_the_verdict_uses():
    kw = dict(eigvals=[4.0, 2.0, 1.0], n=4, alpha=0.05, hidden=2, epochs=400, save_every=4,
              init="orthogonal", init_scale=0.01)
    assert crosscheck(**kw).verdict  # Euler error at alpha lam / N = 0.05 is ~2% in time
    strict = crosscheck(**kw, tolerances=Tolerances(time_rel=0.005))
    assert not strict.verdict and all("time_rel" in f for f in strict.failures)


def test_schedules_run_under_every_way():
    """Piecewise-constant eps and gamma schedules from the orthogonal start: the three recursions
    coincide (float32 round-off), the chained closed form is within the flow's Euler error, and a
    one-piece schedule is the constant."""
    from daedyn import schedules

    kw = dict(eigvals=[4.0, 2.0, 1.0, 0.5], n=4, alpha=0.01, hidden=3, epochs=3000, save_every=10,
              init="orthogonal", init_scale=0.01)
    eps = schedules.piecewise_constant([1000.0, 2000.0], [0.5, 3.0, 1.0])
    gamma = schedules.piecewise_constant([1500.0], [0.0, 0.01])
    r = crosscheck(**kw, eps=eps, gamma=gamma)
    assert r.verdict, r.failures
    for p in ("scalar-matrix", "scalar-train", "matrix-train"):  # measured <= 8e-7
        assert np.max(r.pairs[p]["max"]) < 1e-5, p
    # flow vs recursion: measured 7.8e-3 max (alpha lam / N = 0.01, the jumps included)
    assert np.max(r.pairs["closed-scalar"]["max"]) < 0.02
    # w* is the last piece's (eps 1, gamma 0.01): lam / (lam + eps) - n gamma / (lam + eps)
    np.testing.assert_allclose(r.fixed_point, [(4 - 0.04) / 5, (2 - 0.04) / 3, (1 - 0.04) / 2], rtol=1e-6)
    assert r.settings["eps"] == {"boundaries": [1000.0, 2000.0], "values": [0.5, 3.0, 1.0]}


@pytest.mark.slow  # two more crosschecks: ~7 s on the loaded 2-core CPU
def test_one_piece_schedule_crosscheck_is_the_constant():
    from daedyn import schedules

    kw = dict(eigvals=[4.0, 2.0, 1.0, 0.5], n=4, alpha=0.01, hidden=3, epochs=3000, save_every=10,
              init="orthogonal", init_scale=0.01)
    one = crosscheck(**kw, eps=schedules.piecewise_constant([], [2.0]))
    const = crosscheck(**kw, eps=2.0)
    for w in WAYS:  # the library's one-piece schedules are the constants (bit for bit)
        np.testing.assert_allclose(one.mapping[w], const.mapping[w], rtol=0, atol=1e-6)


@pytest.mark.parametrize("kwargs, match", [
    (dict(eigvals=[1.0], n=2, eps=__import__("daedyn").schedules.linear(1.0, 0.0, 10.0)),
     "piecewise-constant schedules"),
    (dict(), "exactly one"),
    (dict(x=np.ones((4, 2)), eigvals=[1.0, 2.0], n=4), "exactly one"),
    (dict(eigvals=[1.0, 2.0, 3.0], n=2), "n >= D"),
    (dict(eigvals=[1.0], n=2, init="ones"), "init must be"),
    (dict(eigvals=[1.0], n=2, alpha=0.0), "alpha"),
])
def test_bad_arguments(kwargs, match):
    args = dict(alpha=0.1, hidden=1, epochs=10) | kwargs
    x = args.pop("x", None)
    with pytest.raises(ValueError, match=match):
        crosscheck(x, **args)


def _cli(argv, capsys):
    parser = argparse.ArgumentParser(prog="daedyn")
    cli_crosscheck.register(parser.add_subparsers())
    args = parser.parse_args(["crosscheck", *argv])
    rc = args.func(args)
    return rc, capsys.readouterr()


def test_cli_table_json_plot_and_exit_codes(tmp_path, capsys):
    base = ["--eigvals", "4,2,1", "--n", "4", "--hidden", "2", "--init", "orthogonal", "--init-scale", "0.01"]
    rc, out = _cli([*base, "--alpha", "0.01", "--epochs", "2000", "--plot", str(tmp_path / "cc.png")], capsys)
    assert rc == 0 and "verdict: AGREE" in out.out and (tmp_path / "cc.png").stat().st_size > 0
    rc, out = _cli([*base, "--alpha", "1.2", "--epochs", "100", "--json"], capsys)
    d = json.loads(out.out)
    assert rc == 1 and d["verdict"] == "disagree" and d["failures"]
    rc, out = _cli([*base, "--alpha", "0.05", "--epochs", "400", "--tol-time", "0.005", "--json"], capsys)
    assert rc == 1 and json.loads(out.out)["tolerances"]["time_rel"] == 0.005


def test_plot_crosscheck_draws_every_way():
    r = crosscheck(eigvals=[4.0, 2.0], n=2, alpha=0.01, hidden=2, epochs=100, save_every=10,
                   init="orthogonal", init_scale=0.1)
    fig = figures.plot_crosscheck(r)
    left, right = fig.axes[:2]
    assert len(left.lines) == 4 * 2 and len(right.lines) == 6 + 1
