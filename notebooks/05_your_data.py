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
# # Your own data set: plan, train, compare, crosscheck, tune, sweep
#
# A walk through one researcher's session on a data set of their own, a `(N, D)` array saved as
# `.npy` (here a small synthetic one with a decaying spectrum, so that the notebook runs in under a
# minute on a CPU; point `DATA` at your file). Each step is one call, and each result is saved and
# reopened as a labelled xarray dataset:
#
# 1. **plan** the run from the spectrum alone (stability limit, learning times, what is learned), at
#    depth 2 and 3;
# 2. **train** a linear autoencoder with masking noise;
# 3. **compare** it with the theory, measured and predicted in one dataset;
# 4. **crosscheck** the configuration four ways before trusting the theory on this data;
# 5. **tune** the noise level on a held-out split, and a two-piece noise **schedule**;
# 6. **sweep** the learning time over a grid of eigenvalues and noise levels, streamed to disk.

# %%
# %matplotlib inline
import os
import tempfile
import time

import jax.random as jr
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

import daedyn
from daedyn import crosscheck, data, noise, sweep, theory, train, tune

QUICK = os.environ.get("DAEDYN_QUICK", "0") not in ("0", "")
OUT = os.environ.get("DAEDYN_NOTEBOOK_OUT") or tempfile.mkdtemp(prefix="daedyn_05_")
START = time.perf_counter()

# "your" data: 300 samples in 8 dimensions with a decaying spectrum, saved as a .npy file
rng = np.random.default_rng(0)
x = (rng.standard_normal((300, 8)) * np.geomspace(1.0, 0.1, 8)).astype(np.float32)
DATA = os.path.join(OUT, "my_data.npy")
np.save(DATA, x)
ds = data.load_dataset(DATA)[0]  # what `--dataset my_data.npy` loads on the command line
x_train, x_heldout = data.train_heldout_split(np.asarray(ds.x), 60, seed=0)
print("data:", ds.name, np.asarray(ds.x).shape, "| train", x_train.shape, "held-out", x_heldout.shape)

# %% [markdown]
# ## 1. Plan
#
# `daedyn.plan` (and `daedyn plan --dataset my_data.npy ...`) predicts from the spectrum alone how
# fast the run may go (`alpha_max`), when each direction is learned and how many are learned by the
# budget. We plan the network with masking we are about to train, and the same one with three weight
# matrices: from the same small start a deeper network waits longer before it learns.

# %%
HIDDEN, DEPTH, EPOCHS = 4, 2, 300
mask = noise.masking(0.2)
for depth in (DEPTH, 3):
    p = daedyn.plan(x_train, hidden=HIDDEN, depth=depth, alpha=0.5, epochs=EPOCHS, noise=mask, init_scale=0.1)
    print(f"depth {depth}: alpha_max = {p.alpha_max:.3g}; learning times = "
          f"{np.round(p.learning_time, 1).tolist()}; learned by {EPOCHS} epochs: {p.directions_learned} "
          f"of {len(p.learning_time)}")
p = daedyn.plan(x_train, hidden=HIDDEN, depth=DEPTH, alpha=0.5, epochs=EPOCHS, noise=mask, init_scale=0.1)
print("suggested alpha and epochs:", round(p.suggested_alpha, 3), p.suggested_epochs)
print("crosscheck expected to agree:", p.crosscheck, "-", p.crosscheck_reason)
if p.warning:
    print("warning:", p.warning)
print(f"[{time.perf_counter() - START:.1f} s]")

# %% [markdown]
# ## 2. Train and 3. compare with the theory
#
# The run and its comparison become one dataset with a coordinate on every dimension (`epoch`,
# `direction` with `lam` along it), saved to netCDF and reopened.

# %%
spec = daedyn.spectrum.compute_spectrum(x_train)
run = train.train(x_train, hidden=HIDDEN, depth=DEPTH, key=jr.key(0), alpha=0.5, epochs=EPOCHS,
                  save_every=EPOCHS // 10, noise=mask, marginalised=True, init_scale=0.1, spectrum=spec)
# the theory of a corruption: its diagonal eps_j per direction (what `daedyn train` compares with)
eps_j = theory.diagonal_eps(mask.marginal_term(spec))
cmp = train.compare_with_theory(run._replace(eps=eps_j.astype(run.mapping.dtype)), eigvecs=spec.eigvecs)
both = xr.merge([run.to_xarray(), cmp.to_xarray(run.t, run.eigvals)], compat="no_conflicts", join="exact")
path = os.path.join(OUT, "run.nc")
both.to_netcdf(path)
reopened = xr.open_dataset(path)
print(reopened[["mapping", "discrete"]].isel(epoch=-1, direction=slice(0, HIDDEN)).to_dataframe().round(3))
print(f"[{time.perf_counter() - START:.1f} s]")

# %%
fig, ax = plt.subplots(figsize=(6, 3.5))
for j in range(HIDDEN):
    line, = ax.plot(reopened.epoch, reopened.mapping.isel(direction=j), "o", ms=3,
                    label=f"lam = {float(reopened.lam[j]):.3g}")
    ax.plot(reopened.epoch, reopened.discrete.isel(direction=j), "-", color=line.get_color())
ax.set(xlabel="epoch", ylabel="mapping", title=f"depth {DEPTH}, masking p = 0.2: trained (dots), theory")
ax.legend(fontsize=7)
fig

# %% [markdown]
# ## 4. Crosscheck
#
# Before trusting the theory on this data set: one configuration four ways (closed form, scalar
# recursion, full-matrix gradient descent, real training), with a verdict against tolerances. The
# plan above said whether to expect agreement: at alpha = 0.5 the largest direction's Euler step
# alpha lam / N is 0.46, and the continuous closed form runs ahead of gradient descent. A smaller rate
# (alpha lam / N = 0.05) is where the closed form can be trusted.

# %%
p_small = daedyn.plan(x_train, hidden=HIDDEN, alpha=0.05, epochs=8 * EPOCHS, eps=1.0)
print("plan at alpha = 0.05: crosscheck expected to agree:", p_small.crosscheck)
cc = crosscheck.crosscheck(x_train, hidden=HIDDEN, alpha=0.05, epochs=8 * EPOCHS, eps=1.0, init="orthogonal",
                           key=jr.key(1))
print("verdict:", "AGREE" if cc.verdict else "DISAGREE", *cc.failures[:2])
print(cc.to_xarray()["mapping"].isel(epoch=-1, direction=slice(0, HIDDEN)).to_pandas().round(3))
print(f"[{time.perf_counter() - START:.1f} s]")

# %% [markdown]
# ## 5. Tune the noise level, and a noise schedule
#
# Gradient descent on the held-out loss through the closed form (`tune.tune_noise`), then a two-piece
# eps schedule from the same split (`tune.tune_schedule`), against the best constant. A schedule is a
# value like a number: `train.train(..., eps=sched.schedule)` trains under it, and the closed forms,
# the integrators and the sweeps take it too (docs/schedules.md).

# %%
tuned = tune.tune_noise(x_train, x_heldout, epochs=EPOCHS, alpha=0.5, eval_sigma2=0.05, max_steps=15)
print(f"tuned eps = {float(tuned.isotropic.params['eps']):.4g} "
      f"(objective {tuned.isotropic.initial_objective:.5g} -> {tuned.isotropic.objective:.5g})")
problem = tune.heldout_problem(x_train, x_heldout, keep_data=False)
sched = tune.tune_schedule(problem, pieces=2, epochs=EPOCHS, alpha=0.5, eval_sigma2=0.05, max_steps=15)
print("tuned schedule: eps", np.round(np.asarray(sched.schedule.values), 3).tolist(), "switching at epoch",
      np.round(np.asarray(sched.schedule.boundaries), 1).tolist())
print(f"held-out objective: best constant {sched.constant_objective:.5g}, schedule {sched.objective:.5g}")
print(f"[{time.perf_counter() - START:.1f} s]")

# %% [markdown]
# ## 6. Sweep
#
# The learning time over a grid of this data set's eigenvalues and noise levels, chunked and streamed
# to a zarr store (rerunning the same call resumes), opened with xarray.

# %%
grid = sweep.SweepSpec("theory.learning_time",
                       {"lam": np.asarray(spec.eigvals[:HIDDEN]).tolist(), "eps": [0.0, 1.0, 5.0, 20.0]},
                       {"f": 0.5, "w0": 1e-3, "tau": float(x_train.shape[0]) / 0.5})
summary = sweep.run(grid, path=os.path.join(OUT, "times.zarr"), overwrite=True)
times = sweep.open_results(os.path.join(OUT, "times.zarr"))
print(summary.line())
print(times["time"].to_pandas().round(1))
print(f"the whole notebook: {time.perf_counter() - START:.1f} s")
