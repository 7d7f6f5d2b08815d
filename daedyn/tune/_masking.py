"""Tuning the masking rate p through the closed form, in the per-direction (diagonal) approximation.

Inverted-dropout masking with rate p gives the per-direction noise levels
eps_j(p) = p / (1 - p) [V^T diag(Sigma) V]_jj (:func:`daedyn.theory.masking_eps`; docs/corruption.md),
so the closed-form mapping w_j(T) (:func:`daedyn.theory.small_init_trajectory`) and the held-out
objective of :mod:`daedyn.tune` (:func:`~daedyn.tune.heldout_loss`: the denoising loss on held-out
inputs with Gaussian noise of variance ``eval_sigma2``) are smooth functions of p. The rate is
optimised in u = logit(p) (any p in (0, 1) reachable, no clipping) with Adam, and checked against a
grid. The coupling the diagonal approximation neglects is measured by
:func:`daedyn.theory.diagonal_approximation_error` (about 1e-3 in the mapping on mnist5k).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import Array
from jax.typing import ArrayLike

from daedyn import theory
from daedyn._checks import check_int, check_range
from daedyn.tune._routes import heldout_loss

__all__ = ["MaskingTuning", "masking_objective_fn", "tune_masking"]


class MaskingTuning(NamedTuple):
    """Result of :func:`tune_masking`.

    Attributes:
      p: the tuned rate. loss: the objective there.
      grid_p, grid_loss: the grid and its objective values (the baseline).
      history_p: (steps + 1,) the rate along the optimisation.
    """

    p: Array
    loss: Array
    grid_p: Array
    grid_loss: Array
    history_p: Array


def masking_objective_fn(problem, *, epochs: ArrayLike, alpha: ArrayLike, eval_sigma2: ArrayLike,
                         hidden: int | None = None, w0: ArrayLike = 1e-4, gamma: ArrayLike = 0.0):
    """``objective(p)``: the held-out loss after ``epochs`` of training with masking rate p.

    Args:
      problem: a :class:`~daedyn.tune.HeldoutProblem` with ``eigvecs`` (``keep_data=True``).
      epochs: training time T. alpha: learning rate (tau = N / alpha). eval_sigma2: noise variance
        on the held-out inputs (> 0 for an interior optimum). hidden: H (None: all directions).
      w0: initial mapping per direction. gamma: weight decay.
    Returns:
      A pure function of p (jit, grad and vmap apply).
    Raises:
      ValueError: without eigenvectors, or for out-of-range settings.
    """
    if problem.eigvecs is None:
        raise ValueError("masking tuning needs the train eigenvectors: build the problem with "
                         "heldout_problem(..., keep_data=True)")
    check_range("epochs", epochs, 0.0)
    check_range("alpha", alpha, 0.0, lo_open=True)
    check_range("eval_sigma2", eval_sigma2, 0.0)
    lam, v = problem.eigvals, problem.eigvecs
    d = lam.shape[-1]
    hidden = d if hidden is None else check_int("hidden", hidden, 1)
    keep = (jnp.arange(d) < hidden).astype(lam.dtype)
    theory.masking_eps(0.0, lam, v)  # validates the shapes and eigenvalues once
    v2 = v * v
    per_unit = jnp.sum(v2 * jnp.sum(v2 * lam[None, :], axis=1)[:, None], axis=0)  # [V^T diag V]_jj
    n = problem.n

    def objective(p):
        p = jnp.asarray(p, lam.dtype)
        eps = p / (1 - p) * per_unit  # = theory.masking_eps(p, lam, v), without its concrete checks
        w = theory.small_init_trajectory(epochs, lam, eps, gamma, w0=w0, tau=n / alpha, n=n) * keep
        return heldout_loss(w, problem.projected, problem.n_heldout, eval_sigma2)

    return objective


def tune_masking(problem, *, epochs: ArrayLike, alpha: ArrayLike, eval_sigma2: ArrayLike,
                 hidden: int | None = None, w0: ArrayLike = 1e-4, gamma: ArrayLike = 0.0,
                 p0: float = 0.2, steps: int = 200, learning_rate: float = 0.1,
                 grid: ArrayLike | None = None) -> MaskingTuning:
    """Tune the masking rate p by gradient descent (Adam in logit p) and compare with a grid.

    Args:
      problem, epochs, alpha, eval_sigma2, hidden, w0, gamma: as :func:`masking_objective_fn`.
      p0: starting rate in (0, 1). steps: Adam steps (>= 0). learning_rate: Adam's step in logit p.
      grid: rates for the baseline (default 99 points 0.01 ... 0.99).
    Returns:
      :class:`MaskingTuning`.
    Raises:
      ValueError: for p0 outside (0, 1), a grid outside [0, 1), or as :func:`masking_objective_fn`.
    Example:
      >>> import jax.numpy as jnp
      >>> from daedyn.tune import HeldoutProblem
      >>> prob = HeldoutProblem(jnp.array([4.0, 1.0]), jnp.array([0.8, 0.2]), 10, 2, eigvecs=jnp.eye(2))
      >>> r = tune_masking(prob, epochs=1000.0, alpha=0.5, eval_sigma2=0.1)
      >>> round(float(r.p), 3), round(float(r.grid_p[jnp.argmin(r.grid_loss)]), 2)  # tuned vs grid
      (0.286, 0.29)
    """
    check_range("p0", p0, 0.0, 1.0, lo_open=True, hi_open=True)
    steps = check_int("steps", steps, 0)
    grid = np.linspace(0.01, 0.99, 99) if grid is None else np.asarray(grid, np.float64)
    check_range("grid", grid, 0.0, 1.0, hi_open=True)
    f = masking_objective_fn(problem, epochs=epochs, alpha=alpha, eval_sigma2=eval_sigma2, hidden=hidden,
                             w0=w0, gamma=gamma)
    dtype = problem.eigvals.dtype
    g = lambda u: f(jax.nn.sigmoid(u))
    opt = optax.adam(learning_rate)

    @jax.jit
    def run(u0):
        def step(carry, _):
            u, state = carry
            upd, state = opt.update(jax.grad(g)(u), state)
            u = optax.apply_updates(u, upd)
            return (u, state), jax.nn.sigmoid(u)

        (u, _), ps = jax.lax.scan(step, (u0, opt.init(u0)), None, length=steps)
        return u, ps

    u0 = jnp.asarray(np.log(p0 / (1 - p0)), dtype)
    u, ps = run(u0)
    grid_j = jnp.asarray(grid, dtype)
    grid_loss = jax.jit(jax.vmap(f))(grid_j)
    p = jax.nn.sigmoid(u)
    return MaskingTuning(p, f(p), grid_j, grid_loss, jnp.concatenate([jnp.asarray([p0], dtype), ps]))
