"""daedyn: differentiable learning dynamics of (linear) denoising autoencoders.

Implements and extends the theory of Pretorius, Kroon & Kamper, "Learning Dynamics of Linear
Denoising Autoencoders" (ICML 2018). Conventions follow the paper: lam is an eigenvalue of the
*summed* second-moment matrix Sigma = sum_i x_i x_i^T, eps = N s^2, tau = N / alpha, time t in epochs.

Public modules are imported lazily: ``daedyn.theory``, ``daedyn.dynamics``, ``daedyn.spectrum``,
``daedyn.data``, ``daedyn.noise``, ``daedyn.models``, ``daedyn.train``, ``daedyn.tune``,
``daedyn.sweep``, ``daedyn.figures``, ``daedyn.schedules``; and ``daedyn.plan(...)``, the planner of a
training run (its result a ``Plan``; docs/workflow.md).
"""

import importlib

__version__ = "0.1.0"

_SUBMODULES = (
    "theory", "dynamics", "spectrum", "data", "noise", "models", "train", "tune", "sweep", "figures",
    "schedules", "diffusion",
)


def __getattr__(name):
    if name == "plan":  # a function (daedyn/_plan.py), imported on first use like the modules
        return importlib.import_module("daedyn._plan").plan
    if name in _SUBMODULES:
        return importlib.import_module(f"daedyn.{name}")
    raise AttributeError(f"module 'daedyn' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_SUBMODULES) + ["plan"])
