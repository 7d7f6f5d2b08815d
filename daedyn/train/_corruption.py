"""Training with corruptions beyond additive noise (masking, salt-and-pepper, Gaussian covariance).

A corruption object (:mod:`daedyn.noise`: :func:`~daedyn.noise.masking`,
:func:`~daedyn.noise.salt_and_pepper`, :func:`~daedyn.noise.gaussian_covariance`) travels in
``Hyper.corruption``, so its parameters (p, the covariance) are traced like eps: one compilation
serves every rate, runs vmap over rates, and a marginalised run differentiates in p.

- **Sampled** (any network, data path): each step's inputs are ``corruption.corrupt(key, x)``;
  with minibatches the epoch's whole (N, D) corrupted draw is made once and its rows picked, so
  the corruption of sample i does not depend on the batch size (as for additive noise).
- **Marginalised** (linear networks): the corruption term C of the core's expected loss replaces
  eps, in the run's basis: V^T C V (D, D) on the eigen path, the input-basis C ((D,) for masking)
  on the Sigma and data paths. It is computed from the data's spectrum once per compiled chunk
  (:func:`with_term`), not per step.

A corruption whose expectation is not the clean input (raw masking, salt-and-pepper) has no
marginalised form in the core's bias-free loss and is refused with a ``ValueError`` naming it.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from daedyn import _corruption, _linear

__all__ = ["KINDS", "is_corruption", "check_route", "with_term", "corrupt", "batch_shape", "flatten",
           "stability_eps", "check_coupled"]

KINDS = (_corruption.Masking, _corruption.SaltAndPepper, _corruption.GaussianCovariance)


def is_corruption(noise: Any) -> bool:
    """Whether ``noise`` is one of the non-additive corruption objects (not a plain ``Noise``)."""
    return isinstance(noise, KINDS)


def check_route(noise: Any, marginalised: bool, route: str = "train") -> None:
    """Refuse a corruption that ``route`` cannot marginalise, naming the kind and the reason.

    Raises:
      ValueError: for salt-and-pepper or raw masking (``rescale=False``) with ``marginalised=True``.
    """
    if not (marginalised and is_corruption(noise)):
        return
    if isinstance(noise, _corruption.SaltAndPepper):
        raise ValueError(f"{route}: noise 'salt_and_pepper' cannot be marginalised (its mean "
                         "(1 - p) x + p (low + high) / 2 is affine and the expected loss has no bias "
                         "term); use marginalised=False to sample it")
    if isinstance(noise, _corruption.Masking) and not noise.rescale:
        raise ValueError(f"{route}: noise 'masking' with rescale=False cannot be marginalised here: its "
                         "expected loss is that of W' = (1 - p) W, not of the trained W "
                         "(docs/corruption.md); use masking(p) (inverted dropout) or marginalised=False")


def with_term(hyper, data, path: str):
    """``hyper`` with eps replaced by the corruption's marginalised term in the run's basis
    (unchanged without a corruption). ``data`` (a TrainData) carries eigvals, eigvecs and n."""
    corruption = getattr(hyper, "corruption", None)
    if corruption is None:
        return hyper
    basis = "eigen" if path == "eigen" else "input"
    dtype = data.eigvals.dtype
    term = corruption.marginal_term(data, basis=basis)
    return hyper._replace(eps=jnp.asarray(term, dtype))


def corrupt(hyper, key: Array, x: Array) -> Array:
    """The corrupted inputs of a sampled step."""
    return hyper.corruption.corrupt(key, x)


def batch_shape(noise) -> tuple[int, ...]:
    """The batch shape a corruption adds to :func:`~daedyn.train.train_batch` (p's shape; a
    covariance is shared by every run)."""
    if isinstance(noise, _corruption.GaussianCovariance):
        return ()
    return tuple(np.shape(noise.p))


def flatten(noise, shape: tuple[int, ...], size: int, dtype):
    """The corruption with its leaves broadcast to ``shape`` and flattened to ``size`` runs."""
    if isinstance(noise, _corruption.GaussianCovariance):
        cov = jnp.asarray(noise.cov, dtype)
        return _corruption.GaussianCovariance(jnp.broadcast_to(cov, (size, *cov.shape)))
    return jax.tree_util.tree_map(
        lambda a: jnp.broadcast_to(jnp.asarray(a, dtype), shape).reshape(size), noise)


def stability_eps(noise, data, hidden: int):
    """The diagonal eps_j (top ``hidden`` directions) of a corruption for the GD stability check,
    or None where it has none here (batched rates, no marginalised form): the check then uses 0,
    which can miss an instability the corruption's curvature adds."""
    if isinstance(noise, _corruption.Masking) and (np.ndim(noise.p) or not noise.rescale):
        return None
    if isinstance(noise, _corruption.SaltAndPepper):
        return None
    term = noise.marginal_term(data, basis="eigen")
    return np.diagonal(np.asarray(term, np.float64))[:hidden]


def check_coupled(noise, data, hidden: int, alpha, *, epochs=None, stacklevel: int):
    """The GD check with the whole eigenbasis term V^T C V (:func:`daedyn._linear.check_coupled_stability`:
    the largest Hessian eigenvalue of the coupled loss at the balanced fixed point), for a corruption
    whose term :func:`stability_eps` could give (one rate or covariance); ``alpha`` in the paper's
    units. Returns alpha * h_max, or None where there is no such term."""
    if stability_eps(noise, data, hidden) is None or np.ndim(getattr(noise, "cov", 0)) > 2:
        return None
    term = np.asarray(noise.marginal_term(data, basis="eigen"), np.float64)
    return _linear.check_coupled_stability(np.asarray(data.eigvals, np.float64), term, alpha,
                                           float(data.n), hidden=hidden, epochs=epochs,
                                           stacklevel=stacklevel + 1)
