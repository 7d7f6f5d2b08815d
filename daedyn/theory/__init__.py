"""Closed forms of the paper and its supplement, per eigen-direction, numerically safe everywhere.

Conventions (docs/CONTRACTS.md): ``lam`` is an eigenvalue of the *summed* second moment
``Sigma = sum_i x_i x_i^T``, ``eps = N s^2``, ``tau = N / alpha``, ``t`` in epochs, ``gamma`` the weight
decay of Eq. (6) and ``n = N`` (``n = 1`` for the scalar demos); ``eps`` of a noise model is
``daedyn.noise.eps_of(noise, n)``. The scalar flow is

    tau dw1/dt = w2 lam (1 - w2 w1) - eps w2^2 w1 - n gamma w1       (Eq. 2, plus weight decay)
    tau dw2/dt = w1 lam (1 - w2 w1) - eps w2 w1^2 - n gamma w2       (Eq. 3, plus weight decay)

and ``w = w2 w1`` is the mapping the network has learned along that direction.

Every function broadcasts over its array arguments, works under ``jit``/``vmap``/``grad`` and keeps
the floating dtype of its inputs. The implementation is split by job (docs/theory.md):

- ``_general``: Eq. (5) from any start: :func:`dae_trajectory`, :func:`dae_weights`,
  :func:`dae_learning_time` (and, private, ``dae_trajectory_printed``: Eq. (5) evaluated literally,
  the unsafe baseline of docs/errata.md and ``benchmarks/closed_form.py``);
- ``_balanced``: the balanced small start with noise and weight decay (Eq. (7) generalised):
  :func:`small_init_trajectory`, :func:`fixed_point`, :func:`learning_time`,
  :func:`learning_threshold`; each takes ``depth=L`` (default 2) for deep linear DAEs (``_deep``,
  ``_deep_solve``: L >= 3, docs/depth.md);
- ``noise=`` in :func:`small_init_trajectory` and :func:`dae_trajectory`: any value with
  ``direction_moments(lam, n) -> (k, m)`` (a corruption, a :class:`daedyn.diffusion.Objective`) in
  place of ``eps``: ``lam -> k`` (any sign) and ``lam + eps -> m``; ``small_init_trajectory`` also
  takes ``depth=1`` (the exponential ``tau dw/dt = k - (m + n gamma) w``); a negative k at depth
  >= 3 without weight decay is the exact algebraic decay of ``_deep_negative.negative_trajectory``
  (docs/diffusion.md);
- ``_schedule``: piecewise-constant eps, gamma and tau schedules in :func:`small_init_trajectory` (every
  depth) and :func:`dae_trajectory`: the constant solution chained piece by piece (docs/schedules.md);
- ``_rates``: :func:`equivalent_gamma`, :func:`optimal_learning_rates`, :func:`learning_rate_ratio`;
- ``_loss``: :func:`scalar_loss`, :func:`expected_loss`;
- ``_spectrum``: :func:`spectrum_mapping`, :func:`predicted_loss`;
- ``_corruption``: a general corruption term C (masking, covariance noise): :func:`diagonal_eps`
  (eps_j of masking: ``diagonal_eps(daedyn.noise.masking(p).marginal_term(spectrum))``) and the
  measured error of the per-direction approximation,
  :func:`diagonal_approximation_error` (docs/corruption.md);
- ``_unbalanced``: one direction from an aligned, unbalanced start of L factors (no weight decay),
  exact by quadrature: :func:`unbalanced_trajectory`, :func:`unbalanced_learning_time`;
- ``_alignment``: deep networks from a random start: the alignment model,
  :func:`random_start_mapping` (docs/depth.md);
- ``_args``: broadcasting to one shape and dtype, NaN marking (private).

**Bad input.** Concrete arguments are checked and raise ``ValueError`` naming the parameter and
its range. Traced arguments (inside ``jit``/``vmap``/``grad``) cannot be checked; there an
out-of-range value (``lam < 0``, ``eps < 0``, ``gamma < 0``, ``tau <= 0``, ``t < 0``, ``w0 < 0``, ``f``
outside (0, 1)) turns *that* output element into NaN, as does a NaN input. No other NaN is
produced: every in-range input gives a finite value and finite gradients.
"""

from daedyn.theory._alignment import random_start_mapping
from daedyn.theory._balanced import fixed_point, learning_threshold, learning_time, small_init_trajectory
from daedyn.theory._corruption import (
    DiagonalApproximation,
    diagonal_approximation_error,
    diagonal_eps,
)
from daedyn.theory._general import dae_learning_time, dae_trajectory, dae_weights
from daedyn.theory._loss import expected_loss, scalar_loss
from daedyn.theory._rates import equivalent_gamma, learning_rate_ratio, optimal_learning_rates
from daedyn.theory._spectrum import predicted_loss, spectrum_mapping
from daedyn.theory._unbalanced import unbalanced_learning_time, unbalanced_trajectory

__all__ = [
    "dae_trajectory",
    "dae_weights",
    "small_init_trajectory",
    "fixed_point",
    "equivalent_gamma",
    "optimal_learning_rates",
    "learning_rate_ratio",
    "learning_time",
    "learning_threshold",
    "dae_learning_time",
    "scalar_loss",
    "expected_loss",
    "spectrum_mapping",
    "predicted_loss",
    "diagonal_eps",
    "DiagonalApproximation",
    "diagonal_approximation_error",
    "unbalanced_trajectory",
    "unbalanced_learning_time",
    "random_start_mapping",
]
