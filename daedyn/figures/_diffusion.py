"""A figure beyond the paper: a linear denoiser trained across noise levels (docs/diffusion.md).

``figure_diffusion`` (registered as "diffusion"), on Gaussian data with a power-law spectrum (a
training split and a disjoint held-out split):

(a) each direction's learning time (to 90% of its learned value B / A, depth 2) against its
    per-sample variance lam / N on log-log axes, with EDM's preconditioning and without: theory
    lines (:func:`daedyn.diffusion.predict`) and dots measured on trained linear denoisers
    (:func:`daedyn.diffusion.train`). Without preconditioning B = lam E[1]: the 1/lambda law; with
    it B = (lam - N sigma_data^2) E[s / (sigma_data (s^2 + sigma_data^2))], so directions near
    sigma_data^2 learn slowly and those below it never (from a positive balanced start);
(b) the generated spectrum over training against the data's;
(c) KL(held-out || generated) over training, EDM's default against the tuned distribution;
(d) the tuned noise-level distribution p(ln s) against EDM's default (:func:`daedyn.diffusion.tune`).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from daedyn.figures._common import FigureResult, finish, new_figure, report, styled

__all__ = ["figure_diffusion"]

DIFFUSION_QUICK = dict(d=8, n=400, alpha=0.05, budget=400.0, epochs=1000, save_every=10, samples=8,
                       w0=1e-4, power=1.5, top=4.0)
DIFFUSION_FULL = dict(d=16, n=2000, alpha=0.05, budget=400.0, epochs=6000, save_every=10, samples=32,
                      w0=1e-4, power=1.5, top=4.0)


def _learning_time(t, u, target, f=0.9):
    """First time u reaches f * target (NaN if never or if target <= 0): per direction."""
    t, u, target = np.asarray(t), np.asarray(u), np.asarray(target)
    reached = u >= f * target[None, :]
    first = np.argmax(reached, axis=0)
    ok = reached.any(axis=0) & (target > 0)
    return np.where(ok, t[first], np.nan)


@styled
def figure_diffusion(*, quick: bool = True, out_dir=None, key: jax.Array | None = None,
                     data_dir=None) -> FigureResult:
    """Beyond the paper: a linear denoiser trained across noise levels (module docstring).

    Gaussian data with per-sample variances ``top * j^-power`` (j = 1..D), N training samples and
    N held-out; depth 2, balanced start w0 for the theory, N(0, (w0 / D)^(1/2)...) factors for the
    trained dots. Quick: D = 8, N = 400, 1000 epochs of training per preconditioning; full: D = 16,
    N = 2000, 6000 epochs. ``data_dir`` is accepted for the common interface and unused.
    """
    from daedyn import diffusion, spectrum

    del data_dir
    key = jr.key(0) if key is None else key
    s = dict(DIFFUSION_QUICK if quick else DIFFUSION_FULL)
    d, n, alpha, budget = int(s["d"]), int(s["n"]), float(s["alpha"]), float(s["budget"])
    start = time.perf_counter()
    k_train, k_held, k_run = jr.split(key, 3)
    scale = np.sqrt(float(s["top"]) * np.arange(1, d + 1, dtype=np.float64) ** -float(s["power"]))
    x = np.asarray(jr.normal(k_train, (n, d)), np.float64) * scale[None, :]
    x_held = np.asarray(jr.normal(k_held, (n, d)), np.float64) * scale[None, :]
    spec = spectrum.compute_spectrum(jnp.asarray(x, jnp.float32))
    lam, basis = np.asarray(spec.eigvals, np.float64), np.asarray(spec.eigvecs, np.float64)
    held = np.einsum("ij,ik,kj->j", basis, x_held.T @ x_held / n, basis)  # diag(V^T C V), held-out split
    var = lam / n

    # (a) learning time vs lam / N: theory lines on a dense grid, trained dots
    report("diffusion: learning times (theory)")
    grid = np.geomspace(1e-2, 1e2, 60)
    ts = np.concatenate([[0.0], np.geomspace(1e-1, 1e6, 600)])
    lines, dots, trained = {}, {}, {}
    for precond in ("edm", "none"):
        p = diffusion.predict(jnp.asarray(ts, jnp.float32), jnp.asarray(grid * n, jnp.float32), n=n,
                              alpha=alpha, w0=float(s["w0"]), precond=precond)
        lines[precond] = _learning_time(ts, p.w, np.asarray(p.b / p.a))
        report(f"diffusion: training a depth-2 linear denoiser, precond={precond}")
        obj = diffusion.Objective(precond=precond)
        eye = np.sqrt(float(s["w0"])) * np.eye(d, dtype=np.float32)  # balanced: every direction at w0
        run = diffusion.train(x.astype(np.float32), obj, key=k_run, alpha=alpha, epochs=int(s["epochs"]),
                              save_every=int(s["save_every"]), depth=2, samples=int(s["samples"]),
                              params={"w1": eye, "w2": eye})
        a, b = obj.coefficients(jnp.asarray(lam, jnp.float32), n)
        target = np.asarray(b / a)
        dots[precond] = _learning_time(np.asarray(run.t), np.asarray(run.w), target)
        trained[precond] = np.asarray(run.w)

    # (c, d) tuning EDM's (p_mean, p_std) for the held-out KL at the budget
    report("diffusion: tuning (p_mean, p_std)")
    tuned = diffusion.tune(lam, held, n=n, alpha=alpha, budget=budget, max_steps=60 if quick else 200)
    tc = np.concatenate([[0.0], np.geomspace(1.0, 1e5, 200)])
    curves = {}
    for name, obj in (("edm", tuned.start), ("tuned", tuned.objective)):
        r = diffusion.predict(jnp.asarray(tc, jnp.float32), jnp.asarray(lam, jnp.float32), n=n, alpha=alpha,
                              w0=float(s["w0"]), sigma=obj.sigma)
        curves[name] = (np.asarray(r.kl_divergence(jnp.asarray(held, jnp.float32))), np.asarray(r.variance))
    seconds = time.perf_counter() - start

    fig, axes = new_figure(2, 2, width=7.5, height=5.6)
    ax = axes[0, 0]
    colors = {"edm": "C3", "none": "C0"}
    for precond, label in (("edm", "EDM preconditioning"), ("none", "no preconditioning")):
        ax.loglog(grid, lines[precond], color=colors[precond], lw=1.0, label=f"theory, {label}")
        ax.loglog(var, dots[precond], "o", ms=3.5, color=colors[precond], mfc="none",
                  label=f"trained, {label}")
    ref = lines["none"][np.isfinite(lines["none"])]
    ax.loglog(grid, ref[len(ref) // 2] * grid[len(ref) // 2] / grid, "k:", lw=0.8, label="1 / lambda")
    ax.axvline(0.25, color="0.6", lw=0.6)
    ax.set(xlabel="per-sample variance lam / N", ylabel="learning time (epochs, 90%)",
           title="(a) learning time per direction")
    ax.legend(frameon=False, fontsize=5.5)
    ax = axes[0, 1]
    j = np.arange(1, d + 1)
    ax.loglog(j, var, "k-", lw=1.2, label="data lam / N")
    ax.loglog(j, held, "k--", lw=0.8, label="held-out")
    v_edm = curves["edm"][1]
    for when, shade in ((10.0, "0.75"), (30.0, "0.55"), (100.0, "0.35"), (budget, "C3")):
        i = int(np.argmin(np.abs(tc - when)))
        ax.loglog(j, v_edm[i], color=shade, lw=0.9, label=f"generated, t = {tc[i]:.3g}")
    ax.set(xlabel="direction j", ylabel="variance", title="(b) generated spectrum over training (EDM)")
    ax.legend(frameon=False, fontsize=5.5)
    ax = axes[1, 0]
    ax.semilogx(tc[1:], curves["edm"][0][1:], color="C3", label="EDM default (-1.2, 1.2)")
    pm, ps = float(tuned.params["p_mean"]), float(tuned.params["p_std"])
    ax.semilogx(tc[1:], curves["tuned"][0][1:], color="C2", label=f"tuned ({pm:.2f}, {ps:.2f})")
    ax.axvline(budget, color="0.6", lw=0.6, label=f"budget T = {budget:g}")
    ax.set(xlabel="epoch t", ylabel="KL(held-out || generated)", title="(c) KL over training")
    ax.legend(frameon=False, fontsize=6)
    ax = axes[1, 1]
    ls = np.linspace(-7.0, 5.0, 400)
    for (m, sd_), color, label in (((-1.2, 1.2), "C3", "EDM default"), ((pm, ps), "C2", "tuned")):
        density = np.exp(-0.5 * ((ls - m) / sd_) ** 2) / (sd_ * np.sqrt(2 * np.pi))
        ax.plot(ls, density, color=color, label=label)
    ax.axvline(np.log(0.5), color="0.6", lw=0.6, label="ln sigma_data")
    ax.set(xlabel="ln s", ylabel="density", title=f"(d) tuned p(ln s): KL at T {tuned.initial_value:.3g} -> "
           f"{tuned.value:.3g}")
    ax.legend(frameon=False, fontsize=6)
    fig.suptitle(f"Beyond the paper: a linear denoiser across noise levels{' [quick]' if quick else ''}")
    numbers = {"d": d, "n": n, "alpha": alpha, "budget": budget, "quick": quick, "seconds": seconds,
               "settings": {k: float(v) for k, v in s.items()}, "lam": lam, "heldout": held,
               "grid_variance": grid, "learning_time_theory_edm": lines["edm"],
               "learning_time_theory_none": lines["none"], "learning_time_trained_edm": dots["edm"],
               "learning_time_trained_none": dots["none"], "trained_w_edm": trained["edm"],
               "trained_w_none": trained["none"], "t": tc, "kl_edm": curves["edm"][0],
               "kl_tuned": curves["tuned"][0], "variance_edm": curves["edm"][1],
               "variance_tuned": curves["tuned"][1], "tuned_p_mean": pm, "tuned_p_std": ps,
               "kl_at_budget_edm": tuned.initial_value, "kl_at_budget_tuned": tuned.value,
               "conventions": {"published": False, "beyond_the_paper": True, "depth": 2,
                               "learning_time": "first time u >= 0.9 B / A (theory: predict; dots: train)",
                               "heldout": "a disjoint split of the same Gaussian, diag(V^T C V)"}}
    return finish("figure_diffusion", fig, numbers, out_dir)
