# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # A tour of the theory: Figures 1-4 of Pretorius, Kroon & Kamper (ICML 2018)
#
# A linear denoising autoencoder (DAE) learns, independently for each eigen-direction of the
# input second moment Sigma = sum_i x_i x_i^T (eigenvalue `lam`), a scalar mapping
# `w = w2 * w1`. Noise of per-component variance s^2 enters as `eps = N s^2`, weight decay as
# `gamma`, and time is measured in epochs with `tau = N / alpha`.
#
# This notebook evaluates the closed forms in `daedyn.theory`, checks them against the
# integrators in `daedyn.dynamics`, and regenerates the paper's Figures 1-4 with
# `daedyn.figures`. Set `DAEDYN_QUICK=1` for the reduced setting (the tests do).

# %%
# %matplotlib inline
import os
import tempfile

import jax.numpy as jnp
import jax.random as jr
import numpy as np

from daedyn import dynamics, figures, theory

QUICK = os.environ.get("DAEDYN_QUICK", "0") not in ("0", "")
OUT = os.environ.get("DAEDYN_NOTEBOOK_OUT") or tempfile.mkdtemp(prefix="daedyn_nb01_")
print("quick:", QUICK, "| figures go to", OUT)

# %% [markdown]
# ## Fixed points: noise pulls the mapping towards zero
# The fixed point of a direction is `lam / (lam + eps)` (section 4); with weight decay it is
# `1 - n gamma / lam`, clipped at 0. For `lam = 1` and `eps = 0, 1, 5` this gives the paper's
# 1, 0.5 and 1/6.

# %%
print([round(float(w), 4) for w in theory.fixed_point(1.0, jnp.array([0.0, 1.0, 5.0]))])
g = theory.equivalent_gamma(1.0, 0.1)  # weight decay with the same fixed point as eps = 0.1
print("equivalent gamma for eps = 0.1:", round(float(g), 4),
      "| fixed points:", float(theory.fixed_point(1.0, 0.1)), float(theory.fixed_point(1.0, 0.0, g)))

# %% [markdown]
# ## Eq. (5): the trajectory from any start
# `dae_trajectory` evaluates the hyperbolic solution safely (no overflow, balanced starts
# included). Here it is against an RK4 integration of Eqs. (2)-(3) from three starts.

# %%
t = jnp.linspace(0.0, 600.0, 7)
w1 = jnp.array([0.1, -1.5, 1.2])
w2 = jnp.array([0.1, 0.8, -0.3])
closed = theory.dae_trajectory(t, 1.0, 1.0, w1[:, None], w2[:, None], tau=100.0)
flow = dynamics.scalar_flow(t, 1.0, 1.0, w1, w2, tau=100.0, method="rk4", dt=0.5)
print(np.round(np.asarray(closed), 4))
print("max |closed form - RK4| =", float(jnp.max(jnp.abs(closed - flow.w))))

# %% [markdown]
# ## Learning time and optimal learning rates
# From a small balanced start the mapping is logistic (Eq. (7) with noise). Noise does not delay
# learning; the equivalent weight decay does. `learning_time` inverts the closed form.

# %%
eps = jnp.array([0.0, 0.5, 1.0, 2.0])
gam = theory.equivalent_gamma(1.0, eps)
t_noise = theory.learning_time(0.5, 1.0, eps, 0.0, w0=1e-6, tau=1000.0)
t_decay = theory.learning_time(0.5, 1.0, 0.0, gam, w0=1e-6, tau=1000.0)
for e, a, b in zip(eps.tolist(), np.asarray(t_noise), np.asarray(t_decay), strict=True):
    print(f"eps = {e:3.1f}: half-way after {a:7.0f} epochs with noise, {b:7.0f} with weight decay")
a_eps, a_gamma = theory.optimal_learning_rates(1.0, eps, gam)
print("optimal rates (tau = 1):", np.round(np.asarray(a_eps), 3), np.round(np.asarray(a_gamma), 3))
print("ratio R, Eq. (8):", np.round(np.asarray(theory.learning_rate_ratio(1.0, eps, gam)), 3))

# %% [markdown]
# ## Figures 1-4
# Each `figure_N` returns the matplotlib figure and the numbers behind it; with `out_dir` it
# also writes PNG, PDF, NPZ and JSON. The settings are the paper's (these runs are small).

# %%
key = jr.key(0)
r1 = figures.figure_1(quick=QUICK, out_dir=OUT, key=jr.fold_in(key, 1))
print("Figure 1 fixed points:", r1.numbers["fixed_point"],
      "| max |GD - Eq. (5)|:", round(r1.numbers["max_abs_gd_minus_theory"], 3),
      "| max |RK4 - Eq. (5)|:", r1.numbers["max_abs_flow_minus_theory"])
r1.figure

# %%
r2 = figures.figure_2(quick=QUICK, out_dir=OUT)
print("half-way times, lam = 1 (noise):", np.round(r2.numbers["half_time_noise"][1], 0))
print("half-way times, lam = 1 (decay):", np.round(r2.numbers["half_time_decay"][1], 0))
r2.figure

# %% [markdown]
# Figure 3: with the supplement's optimal WDAE rate `1 / (2 lam + gamma)` the DAE and WDAE
# small-start solutions coincide exactly; the authors' experiment used a slower WDAE rate, which
# gives the paper's positive difference (dotted lines; `wdae_rate="authors"` to plot it in colour).

# %%
r3 = figures.figure_3(quick=QUICK, out_dir=OUT)
print("max |DAE - WDAE| (supplement rate):", r3.numbers["max_abs_diff_supplement"])
print("max  DAE - WDAE  (authors' rate):  ", round(r3.numbers["max_diff_authors"], 3))
r3.figure

# %%
r4 = figures.figure_4(quick=QUICK, out_dir=OUT, key=jr.fold_in(key, 4))
norm = r4.numbers["weight_norm_sim"][:, :, -1]
print("final ||w||^2, noise row:", np.round(norm[0], 3))
print("final ||w||^2, decay row:", np.round(norm[1], 3))
r4.figure
