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
# # Tuning the noise level by gradient descent through the learning dynamics
#
# The paper closes by asking how its theory could be used "for tuning noise levels and predicting
# the training time of DAEs". `daedyn.tune` differentiates a held-out objective through the
# closed-form trajectories (or the integrated dynamics, or actual training) and optimises
# log eps with optax. Here: MNIST images (mnist5k when MNIST is not available), a train /
# held-out split, and the held-out *denoising* loss after T epochs. `DAEDYN_QUICK=1` uses
# 4x4-pooled images (D = 49) so that a real network with H = D trains in seconds.

# %%
# %matplotlib inline
import os
import tempfile

import jax.numpy as jnp
import jax.random as jr
import numpy as np

from daedyn import data, figures, theory, tune

QUICK = os.environ.get("DAEDYN_QUICK", "0") not in ("0", "")
OUT = os.environ.get("DAEDYN_NOTEBOOK_OUT") or tempfile.mkdtemp(prefix="daedyn_nb03_")
try:
    ds = data.load("mnist", n=5000)
except data.DatasetUnavailable:
    ds = data.load("mnist5k")
if QUICK:  # average-pool 4 x 4 blocks of pixels: 28 x 28 -> 7 x 7 (D = 49)
    h, w = ds.image_shape
    x = ds.x.reshape(-1, h // 4, 4, w // 4, 4).mean(axis=(2, 4)).reshape(ds.x.shape[0], -1)
else:
    x = ds.x
x_tr, x_ho = data.train_heldout_split(x, 1000, seed=0)
print(ds.name, "train", x_tr.shape, "held out", x_ho.shape)

# %% [markdown]
# ## The objective
# J(eps) = 1/(2M) sum_j (1 - w_j(T))^2 p_j + (s_eval^2 / 2) sum_j w_j(T)^2: the expected loss of
# reconstructing clean held-out images from inputs with noise variance s_eval^2, for the map
# learned in T epochs with training noise eps (p_j: held-out second moment along the train
# eigenvector j). With s_eval^2 = 0 no noise is best; with s_eval^2 > 0 there is an interior optimum.

# %%
settings = dict(epochs=500.0, alpha=0.2, eval_sigma2=0.02) if QUICK else \
    dict(epochs=2000.0, alpha=0.02, eval_sigma2=0.05)
problem = tune.heldout_problem(x_tr, x_ho, keep_data=False)
objective = tune.heldout_objective(problem, **settings)
n = problem.n
for s2 in (1e-3, 1e-2, 1e-1):
    print(f"s^2 = {s2:5.3f}: held-out loss {float(objective({'eps': jnp.asarray(s2 * n)})):.5f}")

# %% [markdown]
# `heldout_objective` is a convenience over one factory, `objective_fn(problem, route)` (the route a
# value; here the closed form): a pure function of the traced hyperparameters (`Hyperparams`; the
# held-out noise enters as eps_eval = M s_eval^2).

# %%
pure = tune.objective_fn(problem, tune.ClosedFormRoute())
hyper = tune.Hyperparams(eps=0.01 * n, alpha=settings["alpha"], epochs=settings["epochs"],
                         eps_eval=problem.n_heldout * settings["eval_sigma2"])
print(f"factory: {float(pure(hyper)):.5f}, heldout_objective: {float(objective({'eps': 0.01 * n})):.5f}")

# %% [markdown]
# ## Gradient descent in log eps against a grid search

# %%
res = tune.tune(objective, {"eps": 0.001 * n})
grid = tune.grid_search(objective, {"eps": np.geomspace(1e-4, 10.0, 201) * n})
print(f"tuned:  s^2 = {float(res.params['eps']) / n:.4f}, loss {res.objective:.6f}, "
      f"{res.n_evals} evaluations ({res.status})")
print(f"grid:   s^2 = {float(grid.params['eps']) / n:.4f}, loss {grid.objective:.6f}, "
      f"{grid.n_evals} evaluations")

# %% [markdown]
# ## Per-direction noise
# The theory treats every direction separately, so nothing forces one noise level on all of
# them: `tune_anisotropic` optimises eps_j per direction from the isotropic optimum (never worse).

# %%
aniso = tune.tune_anisotropic(objective, res, problem.eigvals.shape[-1], max_steps=30)
print(f"anisotropic: loss {aniso.objective:.6f} (isotropic {res.objective:.6f})")
eps_j = np.asarray(aniso.params["eps"]) / n
print("per-direction s^2 for directions 0, 5, 10, 20:", np.round(eps_j[[0, 5, 10, 20]], 4))

# %% [markdown]
# ## Predicting the training time
# `time_to_loss` inverts the closed form: the number of epochs until the clean training loss
# reaches a target, here 1.1 x the loss at the tuned DAE's fixed point. It is differentiable, and
# scales as 1 / alpha (tau = N / alpha).

# %%
eps_best = res.params["eps"]
lam = problem.eigvals
target = 1.1 * float(tune.heldout_loss(theory.fixed_point(lam, eps_best), lam, n))
for alpha in (0.05, 0.1, 0.2):
    t = tune.time_to_loss(problem, target, eps=eps_best, alpha=alpha)
    print(f"alpha = {alpha:4.2f}: {float(t):8.1f} epochs to reach 1.1 x the fixed-point loss")

# %% [markdown]
# ## The figure: closed form, tuned optimum and actually trained networks

# %%
rt = figures.figure_tuning(quick=QUICK, out_dir=OUT, key=jr.key(3), n=5000 if QUICK else None)
print("trained networks:", np.round(rt.numbers["loss_measured"], 4))
print("closed form:     ", np.round(rt.numbers["loss_theory_at_measured"], 4))
print("fixed point at the tuned eps for the top direction:",
      round(float(theory.fixed_point(problem.eigvals[0], res.params["eps"])), 4))
rt.figure
