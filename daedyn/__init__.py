"""daedyn: differentiable learning dynamics of (linear) denoising autoencoders.

Implements and extends the theory of Pretorius, Kroon & Kamper, "Learning Dynamics of Linear
Denoising Autoencoders" (ICML 2018). Conventions follow the paper: lam is an eigenvalue of the
*summed* second-moment matrix Sigma = sum_i x_i x_i^T, eps = N s^2, tau = N / alpha, time t in epochs.

Public modules are imported lazily: ``daedyn.theory``, ``daedyn.dynamics``, ``daedyn.spectrum``,
``daedyn.data``, ``daedyn.noise``, ``daedyn.models``, ``daedyn.train``, ``daedyn.tune``,
``daedyn.sweep``, ``daedyn.figures``, ``daedyn.schedules``.
"""

import importlib

__version__ = "0.1.0"

_SUBMODULES = (
    "theory", "dynamics", "spectrum", "data", "noise", "models", "train", "tune", "sweep", "figures",
    "schedules",
)


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"daedyn.{name}")
    raise AttributeError(f"module 'daedyn' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES))
