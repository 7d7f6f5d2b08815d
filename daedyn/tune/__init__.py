"""Differentiable noise tuning: choose eps (and gamma, alpha, T) by gradient descent through dynamics.

The paper ends by asking how its insights "could actually be used for tuning noise levels and
predicting the training time of DAEs". This module answers it: a held-out objective (the denoising
loss of the trained map on held-out data, after T epochs) is differentiated with respect to the
noise level eps = N s^2 (and weight decay gamma, learning rate alpha, training time T) through one of
three routes, and minimised with any optax optimiser in log-parameters.

- :func:`heldout_problem` / :func:`problem_from_spectrum`: train spectrum + held-out projections.
- Routes are values: :func:`objective_fn` (problem, route) returns a pure ``objective(hyper:
  Hyperparams) -> loss`` for :class:`ClosedFormRoute` (daedyn.theory), :class:`DynamicsRoute`
  (daedyn.dynamics, scan + remat) or :class:`TrainRoute` (daedyn.train, unrolled training).
- :func:`heldout_objective`: the convenience edge: a route name or config plus default values,
  giving ``objective(overrides: dict | Hyperparams) -> loss``.
- :func:`tune`, :func:`grid_search`, :func:`tune_anisotropic`: optimisers over that objective.
- :func:`tune_noise`: the whole pipeline from data arrays.
- :func:`time_to_loss`: differentiable training time to reach a target loss.
- :func:`tune_corruption`: any corruption value's parameters (``noise.masking(p)``: the rate, against
  a grid; ``noise.gaussian_covariance(v)``: per-component variances from the best shared one; an
  isotropic variance) through any route (closed form and balanced dynamics in the per-direction
  approximation, matrix dynamics and training with the coupled term; docs/corruption.md), giving a
  :class:`CorruptionTuning`. :func:`corruption_objective_fn`: its objective of the parameters.
- :func:`tune_schedule` / :func:`schedule_objective_fn` (:class:`ScheduleRoute`): a K-piece noise
  schedule eps(t) (optionally gamma(t), per direction) against the best constant eps.
"""

from daedyn.tune._config import ClosedFormRoute, DynamicsRoute, Hyperparams, TrainRoute
from daedyn.tune._corruption import CorruptionTuning, corruption_objective_fn, tune_corruption
from daedyn.tune._objective import heldout_objective, objective_fn, time_to_loss
from daedyn.tune._optimise import (
    GridResult,
    History,
    TuneResult,
    grid_search,
    tune,
    tune_anisotropic,
)
from daedyn.tune._pipeline import NoiseTuning, tune_noise
from daedyn.tune._problem import HeldoutProblem, heldout_problem, problem_from_spectrum
from daedyn.tune._routes import heldout_loss
from daedyn.tune._schedule import (
    ScheduleRoute,
    ScheduleTuning,
    schedule_objective_fn,
    tune_schedule,
)

__all__ = [
    "HeldoutProblem", "heldout_problem", "problem_from_spectrum",
    "Hyperparams", "ClosedFormRoute", "DynamicsRoute", "TrainRoute",
    "objective_fn",
    "heldout_loss", "heldout_objective", "time_to_loss", "History", "TuneResult",
    "GridResult", "tune", "grid_search", "tune_anisotropic",
    "NoiseTuning", "tune_noise", "CorruptionTuning", "corruption_objective_fn", "tune_corruption",
    "ScheduleRoute", "ScheduleTuning", "schedule_objective_fn", "tune_schedule",
]
