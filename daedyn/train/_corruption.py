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

Raw masking (x~ = m x, mean (1 - p) x) is one more quadratic form of the core: K = (1 - p) Sigma and
M = (1 - p)^2 Sigma + p (1 - p) diag(Sigma) (:func:`with_term` sets ``Hyper.mean_scale`` = 1 - p and the
term). Salt-and-pepper's mean (1 - p) x + p (low + high) / 2 is affine: the bias-free loss has no form
for it, and it is refused with a ``ValueError`` naming it.

**Schedules.** A corruption's parameter may be a schedule (``masking(p=schedule)``, a covariance
schedule): epoch k uses ``corruption.at(k)`` (:func:`daedyn.train._schedule.hyper_at_epoch`, the
convention of every schedule), sampled or marginalised; the marginalised term is then the schedule
t -> C(t), its data part formed once per chunk and only the rate's factor per step. With an eps
schedule as well (``train(noise=corruption, eps=schedule)``, :class:`WithAdditive`), Gaussian noise
of variance eps(k) / N is added to the corrupted inputs of epoch k, and the marginalised term is
C(k) + eps(k) I (the two are independent and both have mean zero given x).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax import Array

from daedyn import _corruption, _linear
from daedyn import noise as noise_lib
from daedyn.schedules import Function, PiecewiseConstant, is_schedule

__all__ = ["KINDS", "WithAdditive", "is_corruption", "check_route", "with_term", "corrupt", "batch_shape",
            "stability_eps", "check_coupled"]

KINDS = (_corruption.Masking, _corruption.SaltAndPepper, _corruption.GaussianCovariance)

_ADDITIVE = 0xADD  # fold_in constant of the key of the additive noise drawn on top of a corruption


@dataclasses.dataclass(frozen=True)
class WithAdditive:
    """The noise of a run with a corruption and an eps schedule (:func:`daedyn.train._schedule.driver_eps`):
    the corruption, then additive noise of the ``additive`` kind with level eps (variance eps / N).
    Static structure for :func:`daedyn.train._config.loop_config`; the parameters travel in ``Hyper``."""

    corruption: Any
    additive: noise_lib.Noise

    @property
    def kind(self) -> str:
        return f"{self.corruption.kind}+{self.additive.kind}"


def is_corruption(noise: Any) -> bool:
    """Whether ``noise`` is one of the non-additive corruption objects (not a plain ``Noise``)."""
    return isinstance(noise, KINDS)


def check_route(noise: Any, marginalised: bool, route: str = "train", epochs: int | None = None) -> None:
    """Refuse a corruption that ``route`` cannot marginalise, naming the kind and the reason; with
    ``epochs``, range-check a schedule parameter on the run's epochs (a user function's values).

    Raises:
      ValueError: for salt-and-pepper or raw masking (``rescale=False``) with ``marginalised=True``,
        or a schedule value out of range (naming the parameter).
    """
    if is_corruption(noise) and epochs is not None:
        noise.check_schedules(epochs)
    if not (marginalised and is_corruption(noise)):
        return
    if isinstance(noise, _corruption.SaltAndPepper):
        raise ValueError(f"{route}: noise 'salt_and_pepper' cannot be marginalised (its mean "
                         "(1 - p) x + p (low + high) / 2 is affine and the expected loss has no bias "
                         "term); use marginalised=False to sample it")


def _raw_term(t, p, base):
    """p (1 - p) ``base`` at time t (p a rate or a schedule)."""
    p = p(t) if is_schedule(p) else p
    return (p * (1 - p)) * base


def _keep(t, p):
    p = p(t) if is_schedule(p) else p
    return 1 - p


def _raw_masking(corruption, data, path: str):
    """(term, mean_scale) of raw masking in the run's basis. Its mean is (1 - p) x, so K = (1 - p) Sigma
    and M = (1 - p)^2 Sigma + p (1 - p) diag(Sigma). The eigen and Sigma paths take K = mean_scale Sigma
    and the core's C = M - K = p (1 - p) (diag(Sigma) - Sigma) (in the eigenbasis V^T diag(Sigma) V -
    diag(lam)); the data path feeds mean_scale x and adds the covariance p (1 - p) diag(Sigma)."""
    diag = _corruption.diag_of_sigma(data)
    if path == "data":
        base = diag
    elif path == "eigen":
        base = _corruption.rotate_term(diag, jnp.asarray(data.eigvecs)) - jnp.diag(jnp.asarray(data.eigvals))
    else:
        base = jnp.diag(diag) - jnp.asarray(data.sigma)
    p = corruption.p
    if is_schedule(p):
        return Function((p, base), _raw_term), Function((p,), _keep)
    p = jnp.asarray(p, base.dtype)
    return _raw_term(None, p, base), 1 - p


def with_term(hyper, data, path: str):
    """``hyper`` with eps replaced by the corruption's marginalised term plus eps I, C + eps I, in the
    run's basis (unchanged without a corruption; the corruption is then consumed: None). ``data``
    (a TrainData) carries eigvals, eigvecs and n. Where the corruption or eps is a schedule the term
    is the schedule t -> C(t) + eps(t) I (:func:`_plus_eps`), evaluated per epoch by
    :func:`~daedyn.train._schedule.hyper_at_epoch`; its data part is formed here, once. Raw masking
    also sets ``mean_scale`` = 1 - p (K = mean_scale Sigma; :func:`_raw_masking`)."""
    corruption = getattr(hyper, "corruption", None)
    if corruption is None:
        return hyper
    basis = "eigen" if path == "eigen" else "input"
    dtype = data.eigvals.dtype
    scale = None
    if isinstance(corruption, _corruption.Masking) and not corruption.rescale:
        term, scale = _raw_masking(corruption, data, path)
    else:
        term = corruption.marginal_term(data, basis=basis)
    cast = lambda x: jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), x)
    term, eps = cast(term), cast(hyper.eps)
    if is_schedule(term) or is_schedule(eps):
        total = Function((term, eps), _plus_eps)
    else:
        total = _plus_eps(None, term, eps)
    if scale is not None:
        return hyper._replace(eps=total, corruption=None, mean_scale=cast(scale))
    return hyper._replace(eps=total, corruption=None)


def _plus_eps(t, term, eps):
    """C + eps I at time t (a schedule's value there): (D,) + eps, or (D, D) + eps I."""
    term = term(t) if is_schedule(term) else term
    eps = jnp.asarray(eps(t) if is_schedule(eps) else eps, term.dtype)
    if term.ndim == 2 and eps.ndim == 0:
        return term + eps * jnp.eye(term.shape[-1], dtype=term.dtype)
    return term + eps


def corrupt(hyper, key: Array, x: Array, additive=None, n=None) -> Array:
    """The corrupted inputs of a sampled step (the corruption in force: ``hyper`` is evaluated at
    the epoch); with an ``additive`` unit sampler, plus sqrt(eps / n) times its draw from a key
    folded out of ``key`` (so the corruption's draw is that of a run without it)."""
    out = hyper.corruption.corrupt(key, x)
    if additive is None:
        return out
    z = noise_lib.Noise("additive", 1.0, additive).unit_sample(jr.fold_in(key, _ADDITIVE), out.shape,
                                                             out.dtype)
    return out + jnp.sqrt(jnp.asarray(hyper.eps, out.dtype) / n) * z


def _rate_of(noise):
    return noise.cov if isinstance(noise, _corruption.GaussianCovariance) else noise.p


def batch_shape(noise) -> tuple[int, ...]:
    """The batch shape a corruption adds to :func:`~daedyn.train.train_batch` (p's shape, a
    piecewise-constant p schedule's value shape; a covariance is shared by every run).

    Raises:
      ValueError: for a p schedule of another kind (one schedule per run needs the pieces).
    """
    if isinstance(noise, _corruption.GaussianCovariance):
        return ()
    p = noise.p
    if is_schedule(p) and not isinstance(p, PiecewiseConstant):
        raise ValueError(f"p must be a piecewise-constant schedule in train_batch() (its values "
                         f"(K + 1, *S) give one schedule per run); got a {type(p).__name__} schedule")
    return tuple(p.shape) if is_schedule(p) else tuple(np.shape(p))


def _stand_in(noise):
    """A constant corruption whose term bounds the schedule's for the GD check: masking at the
    largest rate (the term grows with p), per-component variances at their largest values; None
    where there is none (values known only on the run's times, a (D, D) covariance schedule)."""
    if not noise.scheduled:
        return noise
    rate = _rate_of(noise)
    values = _corruption._schedule_values("p", rate)
    if values is None or (isinstance(noise, _corruption.GaussianCovariance) and len(rate.shape) == 2):
        return None
    worst = np.max(np.asarray(values), axis=0)
    if isinstance(noise, _corruption.GaussianCovariance):
        return _corruption.GaussianCovariance(worst)
    return type(noise).tree_unflatten(noise.tree_flatten()[1], (worst,))


def stability_eps(noise, data, hidden: int):
    """The diagonal eps_j (top ``hidden`` directions) of a corruption for the GD stability check,
    or None where it has none here (batched rates, no marginalised form, a schedule without a
    bounding constant (:func:`_stand_in`)): the check then uses 0, which can miss an instability
    the corruption's curvature adds. A scheduled rate is checked at its largest value."""
    noise = _stand_in(noise)
    if noise is None:
        return None
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
    if stability_eps(noise, data, hidden) is None:
        return None
    noise = _stand_in(noise)
    if np.ndim(getattr(noise, "cov", 0)) > 2:
        return None
    term = np.asarray(noise.marginal_term(data, basis="eigen"), np.float64)
    return _linear.check_coupled_stability(np.asarray(data.eigvals, np.float64), term, alpha,
                                           float(data.n), hidden=hidden, epochs=epochs,
                                           stacklevel=stacklevel + 1)
