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
# # A linear denoiser trained across noise levels (diffusion)
#
# The paper's DAE sees one noise level. Score-based diffusion models (EDM) train one denoiser
# `D(x~; s) = c_skip(s) x~ + c_out(s) F(c_in(s) x~)` over a distribution of noise levels s and then
# generate by integrating the probability-flow ODE. With a linear F this is, per eigen-direction of
# `Sigma = X^T X`, the paper's dynamics with `lam -> B` and `lam + eps -> A` (docs/diffusion.md).
# Here: predict training and the generated spectrum, see EDM's preconditioning change which
# directions are learned, train a real linear denoiser against the prediction, and tune the
# noise-level distribution by gradient. `DAEDYN_QUICK=1` shortens the training run.

# %%
# %matplotlib inline
import os
import tempfile

import jax.numpy as jnp
import jax.random as jr
import numpy as np

from daedyn import diffusion, figures

QUICK = os.environ.get("DAEDYN_QUICK", "0") not in ("0", "")
OUT = os.environ.get("DAEDYN_NOTEBOOK_OUT") or tempfile.mkdtemp(prefix="daedyn_nb04_")
D, N, ALPHA = 6, 400, 0.05
scale = np.sqrt(4.0 * np.arange(1, D + 1) ** -1.5)  # per-sample variances 4 j^-1.5
x = np.asarray(jr.normal(jr.key(0), (N, D))) * scale[None, :]
x_held = np.asarray(jr.normal(jr.key(1), (N, D))) * scale[None, :]  # a disjoint held-out split
lam, vec = np.linalg.eigh(x.T @ x)
lam, vec = lam[::-1], vec[:, ::-1]
held = np.einsum("ij,ik,kj->j", vec, x_held.T @ x_held / N, vec)  # held-out variance per direction
print("per-sample variances lam / N:", np.round(lam / N, 3).tolist())

# %% [markdown]
# ## The coefficients and the prediction
#
# Under EDM's preconditioning `B = (lam - N sigma_data^2) E[...]`: directions whose variance is below
# `sigma_data^2 = 0.25` have `B < 0`, and from a small positive balanced start they decay to 0.
# Without preconditioning `B = lam`: every direction is learned, in a time proportional to 1 / lam.

# %%
t = jnp.array([0.0, 20.0, 100.0, 400.0, 2000.0])
for precond in ("edm", "none"):
    r = diffusion.predict(t, jnp.asarray(lam, jnp.float32), n=N, alpha=ALPHA, w0=1e-4, precond=precond)
    print(f"{precond}: learned value B / A =", np.round(np.asarray(r.b / r.a), 3).tolist())
    print(f"{precond}: generated variance at t = 2000:", np.round(np.asarray(r.variance[-1]), 3).tolist())
    print(f"{precond}: KL(held-out || generated) over t:",
          np.round(np.asarray(r.kl_divergence(jnp.asarray(held, jnp.float32))), 3).tolist())

# %% [markdown]
# ## A real linear denoiser against the prediction
#
# `diffusion.train` runs gradient descent on the sampled objective (noise levels and directions drawn
# per example and step) through daedyn's training loop; depth 1 here (one D x D matrix), starting at 0.

# %%
epochs = 200 if QUICK else 1000
run = diffusion.train(x.astype(np.float32), key=jr.key(2), alpha=ALPHA, epochs=epochs, save_every=epochs // 4,
                      samples=16, init_scale=0.0)
pred = diffusion.predict(run.t.astype(jnp.float32), run.lam, n=N, alpha=ALPHA, w0=0.0, depth=1)
print("trained   variance at the end:", np.round(np.asarray(run.variance_exact[-1]), 3).tolist())
print("predicted variance at the end:", np.round(np.asarray(pred.variance[-1]), 3).tolist())
gap = np.max(np.abs(np.asarray(run.variance_exact[-1]) / np.asarray(pred.variance[-1]) - 1.0))
print(f"largest relative gap: {gap:.3f} (sampled gradients: 16 draws per example and step)")

# %%
import matplotlib.pyplot as plt  # noqa: E402  (a notebook cell)

fig, ax = plt.subplots(figsize=(6, 3.5))
for j in range(len(lam)):
    line, = ax.plot(np.asarray(run.t), np.asarray(run.variance_exact)[:, j], "o", label=f"direction {j}")
    ax.plot(np.asarray(run.t), np.asarray(pred.variance)[:, j], "-", color=line.get_color())
ax.set(xlabel="epoch", ylabel="generated variance", title="trained (dots) and predicted (lines)")
ax.legend(fontsize=7)
fig

# %% [markdown]
# ## Tuning the noise levels for held-out data
#
# `diffusion.tune` minimises the KL to the held-out split after a budget T by gradient through the
# closed form (L-BFGS in (p_mean, log p_std), daedyn.tune's driver).

# %%
tuned = diffusion.tune(lam, held, n=N, alpha=ALPHA, budget=400.0, max_steps=50)
print(f"tuned: p_mean = {float(tuned.params['p_mean']):.3f}, p_std = {float(tuned.params['p_std']):.3f}")
print(f"KL at T = 400: EDM default {tuned.initial_value:.4f} -> tuned {tuned.value:.4f} "
      f"({tuned.result.n_evals} evaluations, {tuned.result.status})")

# %% [markdown]
# ## The figure
#
# `daedyn figures --only diffusion` draws learning time against variance (theory and trained, with and
# without preconditioning), the generated spectrum and KL over training and the tuned distribution.
# It trains two depth-2 denoisers, so this notebook draws it only outside the quick setting.

# %%
if not QUICK:
    res = figures.FIGURES["diffusion"](quick=True, out_dir=OUT)
    print("wrote", [str(p) for p in res.paths if str(p).endswith(".png")])
