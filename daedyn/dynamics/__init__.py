"""Batched learning dynamics of linear (denoising) autoencoders of any depth.

- Scalar dynamics of one eigen-direction, Eqs. (2)-(3) with weight decay: :func:`scalar_gd` (the exact
  gradient-descent recursion) and :func:`scalar_flow` (the continuous flow, RK4 or diffrax), batched
  elementwise over any broadcastable grid of settings, at any depth (``depth=L``: the first L - 1
  factors start at w1, the last at w2). :func:`scalar_gd` saves the mapping ``w`` unless asked for
  more (``observables``); a field not saved is a :class:`NotSaved` placeholder that raises
  :class:`NotSavedError` naming the fix.
- Full-matrix dynamics of L >= 2 factors in the eigenbasis of Sigma (section 3.1):
  :func:`matrix_gd` and :func:`matrix_flow` (``matrix_gd(eigvals, w1, w2, *more, ...)``: the depth
  is the number of factors; every rate a constant or a schedule), with :func:`orthogonal_init`
  (section 3.2) and :func:`random_init` (any depth: ``h`` an int or a tuple of widths); the
  reference paths from a data matrix or from Sigma live in the private ``_matrix_reference`` (tests
  and benchmarks). One result type, :class:`MatrixTrajectory`, at every depth.
- Long runs in pieces with progress: :func:`simulate_scalar` (``depth=``), :func:`simulate_matrix`
  (any number of factors).
- Per direction from any, also fully unbalanced, start of the L factors (docs/depth.md):
  :func:`scalar_gd` / :func:`scalar_flow` with ``factors=`` (a (..., L) start of every factor).
- :func:`check_gd_stability`: warns when gradient descent cannot settle (supplement D's Hessian).
"""

from daedyn._linear import UnstableStepWarning, check_gd_stability
from daedyn.dynamics._init import from_eigenbasis, orthogonal_init, random_init, to_eigenbasis
from daedyn.dynamics._matrix import MatrixTrajectory, matrix_flow, matrix_gd
from daedyn.dynamics._notsaved import NotSaved, NotSavedError
from daedyn.dynamics._scalar import (
    ScalarTrajectory,
    choose_backend,
    default_dt,
    scalar_flow,
    scalar_gd,
)
from daedyn.dynamics._simulate import simulate_matrix, simulate_scalar

__all__ = [
    "ScalarTrajectory", "scalar_gd", "scalar_flow", "choose_backend", "default_dt",
    "NotSaved", "NotSavedError", "UnstableStepWarning", "check_gd_stability",
    "MatrixTrajectory", "matrix_gd", "matrix_flow",
    "orthogonal_init", "random_init", "to_eigenbasis", "from_eigenbasis",
    "simulate_scalar", "simulate_matrix",
]
