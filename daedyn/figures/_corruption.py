"""A figure beyond the paper: what masking noise suppresses, and how good the per-direction theory is.

``figure_corruption``: on real images, inverted-dropout masking with rate p has the marginalised
term C = p / (1 - p) diag(Sigma) (docs/corruption.md). Left: the learned value per eigen-direction,
lam_j / (lam_j + eps_j) with eps_j = [V^T C V]_jj, against isotropic Gaussian noise with the same
total corruption tr(C) (eps = tr(C) / D), and the end of the coupled full-matrix flow for the
H learned directions. Right: the RMSE over time between the diagonal theory and the coupled flow
per direction (``daedyn.theory.diagonal_approximation_error``), with the integration floor (the same
flow with only the diagonal of V^T C V, where the theory is exact).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from daedyn.figures._common import COLORS, FigureResult, figure_dataset, finish, new_figure, report, styled

CORRUPTION_QUICK = dict(n=5000, hidden=16, p=0.3, w0=1e-3, tau_factor=4.0, t_scale=6.0, saves=40, dt=1.0)
CORRUPTION_FULL = dict(n=60000, hidden=32, p=0.3, w0=1e-3, tau_factor=4.0, t_scale=6.0, saves=60, dt=1.0)


@styled
def figure_corruption(*, quick: bool = True, out_dir=None, key: jax.Array | None = None, data_dir=None,
                      dataset: str = "mnist", p: float | None = None, hidden: int | None = None,
                      n: int | None = None) -> FigureResult:
    """Beyond the paper: masking vs isotropic Gaussian noise per direction, and the diagonal theory's error.

    Both runs start from the decoupled small state (mapping w0 in each of the H leading directions),
    tau = 4 lam_1, for 6 tau / lam_H epochs, in float64. Deterministic (``key`` is accepted for the
    common figure interface and unused). Quick: MNIST N = 5000 (mnist5k fallback), H = 16, p = 0.3
    (about 40 s on a 2-core CPU); full: N = 60000, H = 32.
    """
    from daedyn import noise, spectrum, theory

    del key
    s = dict(CORRUPTION_QUICK if quick else CORRUPTION_FULL)
    s.update({k: v for k, v in dict(p=p, hidden=hidden, n=n).items() if v is not None})
    ds, label, note = figure_dataset(dataset, n=s["n"], quick=quick, data_dir=data_dir)
    h = int(s["hidden"])
    report(f"corruption: spectrum and masking term of {label}")
    with jax.enable_x64(True):
        spec = spectrum.compute_spectrum(jnp.asarray(np.asarray(ds.x, np.float64)))
        lam = spec.eigvals
        c = noise.masking(float(s["p"])).marginal_term(spec)
        d, n_samples = lam.shape[0], int(spec.n)
        tau = float(s["tau_factor"]) * float(lam[0])
        t_end = float(s["t_scale"]) * tau / float(lam[h - 1])
        ts = jnp.linspace(0.0, t_end, int(s["saves"]) + 1)
        kw = dict(hidden=h, w0=float(s["w0"]), tau=tau, n=n_samples, dt=float(s["dt"]))
        report(f"corruption: coupled flow, H = {h}, {t_end:.0f} epochs")
        start = time.perf_counter()
        r = theory.diagonal_approximation_error(ts, lam, c, **kw)
        floor = theory.diagonal_approximation_error(ts, lam, jnp.diag(r.eps), **kw).rmse
        seconds = time.perf_counter() - start
        lam_np, eps_j = np.asarray(lam), np.asarray(r.eps)
        eps_iso = float(np.trace(np.asarray(c))) / d
        safe = np.where(lam_np + eps_j > 0, lam_np + eps_j, 1.0)
        fp_mask = np.where(lam_np + eps_j > 0, lam_np / safe, 0.0)
        fp_iso = lam_np / (lam_np + eps_iso)
        rmse, floor = np.asarray(r.rmse)[:h], np.asarray(floor)[:h]
        flow_end = np.asarray(r.flow)[-1]
    j = np.arange(d)
    fig, axes = new_figure(1, 2, width=7.5, height=3.0)
    ax = axes[0, 0]
    ax.semilogx(j + 1, fp_iso, color=COLORS["ae"], lw=1.0,
                label=f"isotropic Gaussian, eps = tr C / D = {eps_iso:.0f}")
    ax.semilogx(j + 1, fp_mask, color=COLORS["dae"], lw=1.0,
                label=f"masking p = {s['p']:g}: lam / (lam + eps_j)")
    ax.semilogx(j[:h] + 1, flow_end[:h], "k.", ms=3, label="coupled flow at the end")
    ax.set(xlabel="direction j + 1 (descending eigenvalue)", ylabel="learned value (fixed point)",
           title=f"what masking suppresses, {label}")
    ax.legend(frameon=False, fontsize=6)
    ax = axes[0, 1]
    ax.semilogy(j[:h], rmse, "o-", ms=3, lw=0.8, color=COLORS["dae"],
                label="diagonal theory vs coupled flow")
    ax.semilogy(j[:h], np.maximum(floor, 1e-16), "x:", ms=3, lw=0.8, color="0.5",
                label="integration floor (diagonal C)")
    ax.set(xlabel="direction j", ylabel="RMSE of the mapping over time",
           title="error of the per-direction approximation")
    ax.legend(frameon=False, fontsize=6)
    fig.suptitle(f"Beyond the paper: masking noise, per direction{' [quick]' if quick else ''}")
    numbers = {"dataset": dataset, "label": label, "note": note or "", "source": ds.source,
               "n": n_samples, "d": d, "hidden": h, "p": float(s["p"]), "w0": float(s["w0"]),
               "tau": tau, "t_end": t_end, "dt": float(s["dt"]), "quick": quick, "seconds": seconds,
               "eigvals": lam_np, "eps_j": eps_j, "eps_iso": eps_iso, "fixed_point_masking": fp_mask,
               "fixed_point_isotropic": fp_iso, "flow_end": flow_end, "rmse": rmse,
               "integration_floor": floor, "t": np.asarray(r.t), "theory": np.asarray(r.theory)[:, :h],
               "flow": np.asarray(r.flow)[:, :h],
               "conventions": {"published": False, "beyond_the_paper": True,
                               "corruption": "inverted dropout, C = p / (1 - p) diag(Sigma)",
                               "theory": "theory.small_init_trajectory with eps_j = [V^T C V]_jj",
                               "flow": "dynamics.matrix_flow with the whole V^T C V (RK4, float64)"}}
    return finish("figure_corruption", fig, numbers, out_dir)
