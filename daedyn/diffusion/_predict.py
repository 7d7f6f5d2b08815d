"""The prediction of a linear denoiser trained across noise levels: each direction's F value over
training (through :mod:`daedyn.theory`, no engine of its own) and the variance the probability-flow
ODE generates from it.

Generation: ``dx/ds = (x - D(x; s)) / s`` from ``x(sigma_max) ~ N(0, sigma_max^2 I)`` down to sigma_min.
Along a direction, ``D = g(s) x`` with ``g = c_skip + c_out c_in u``, so
``d ln x / ds = (1 - g) / s`` and the generated variance is

    v = sigma_max^2 exp(-2 int_{sigma_min}^{sigma_max} (1 - g(s)) / s ds) = sigma_max^2 exp(-2 I0 + 2 I1 u)

with the closed-form integrals of :meth:`Objective.flow_integrals` ("none":
``v = sigma_max^2 (sigma_min / sigma_max)^(2 (1 - u))``; "edm":
``v = sigma_max^2 (sigma_min^2 + sd^2) / (sigma_max^2 + sd^2) exp(2 u (atan(sigma_max / sd)
- atan(sigma_min / sd)))``).
Independent levels on a :class:`Ladder` have no denoiser between the levels: their generation is the
ladder's exact step for a denoiser held fixed over each step (DDIM / Euler in the exponential
variable) from the largest level to the smallest, ``x <- g_i x + (s_{i+1} / s_i) (1 - g_i) x``, and
``v = s_max^2 prod_i (g_i + (s_{i+1} / s_i) (1 - g_i))^2``.
"""

from __future__ import annotations

import functools as ft
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from daedyn import theory
from daedyn._checks import check_broadcastable, check_finite, check_int, check_output, check_range, concrete
from daedyn.diffusion._divergence import frechet_distance, kl_divergence
from daedyn.diffusion._levels import Ladder, LogNormal, LogUniform
from daedyn.diffusion._objective import Conditioning, Objective, Precond, Weighting, _Shared

__all__ = ["Prediction", "predict", "generated_variance"]


class Prediction(NamedTuple):
    """What :func:`predict` returns (a pytree: differentiable, vmappable).

    Fields:
      t: the times (epochs), as given.
      lam: the eigenvalues of Sigma, as given.
      w: each direction's F value u over t, shape ``t.shape + lam.shape`` (independent levels: a
        trailing level axis, the ladder's order).
      variance: the generated variance of each direction over t, shape ``t.shape + lam.shape``.
      a, b: the coefficients (A, B) per direction (a trailing level axis when independent); the
        learned value is ``b / a``.

    Methods: :meth:`kl_divergence` and :meth:`frechet_distance` to the data's Gaussian (training or
    held-out), :meth:`to_xarray`.
    """

    t: Array
    lam: Array
    w: Array
    variance: Array
    a: Array
    b: Array

    def kl_divergence(self, cov: ArrayLike, *, basis: ArrayLike | None = None,
                      reverse: bool = False) -> Array:
        """``KL(data || generated)`` at each time (``reverse=True``: the other direction), in nats.

        The generated Gaussian is ``N(0, V diag(variance) V^T)``; the data's ``N(0, C)``: ``cov`` is C
        per direction (the training set: ``lam / n``) or a (D, D) second moment (a held-out set's
        ``X^T X / N``) with ``basis=V``, Sigma's eigenvectors as columns (module ``_divergence``).
        Differentiable (a tuning objective). Returns shape ``t.shape``.
        """
        return kl_divergence(self.variance, cov, basis=basis, reverse=reverse)

    def frechet_distance(self, cov: ArrayLike, *, basis: ArrayLike | None = None) -> Array:
        """Frechet (2-Wasserstein squared) distance between the generated Gaussian and ``N(0, C)`` at
        each time; arguments as :meth:`kl_divergence`."""
        return frechet_distance(self.variance, cov, basis=basis)

    def to_xarray(self):
        """An ``xarray.Dataset``: ``w`` and ``variance`` over (``t``, ``direction``) (``w`` also over
        ``level`` when the levels are independent), ``a``, ``b`` and ``lam`` over ``direction``.
        Needs 1-D ``t`` and ``lam`` (and the ``sweep`` extra, for xarray)."""
        from daedyn._xarray import dataset

        if np.ndim(self.t) != 1 or np.ndim(self.lam) != 1:
            raise ValueError(f"to_xarray needs 1-D t and lam; got shapes {np.shape(self.t)} and "
                             f"{np.shape(self.lam)}")
        levels = ("level",) if np.ndim(self.a) == 2 else ()
        fields = {"w": (self.w, ("t", "direction") + levels), "variance": (self.variance, ("t", "direction")),
                  "a": (self.a, ("direction",) + levels), "b": (self.b, ("direction",) + levels),
                  "lam": (self.lam, ("direction",))}
        return dataset(fields, time=("t", self.t), coords={"direction": np.arange(np.shape(self.lam)[0])},
                       what="Prediction.to_xarray")


def generated_variance(u: ArrayLike, objective: Objective, *, sigma_min: ArrayLike = 0.002,
                       sigma_max: ArrayLike = 80.0) -> Array:
    """Generated variance of directions whose F value is u (see the module docstring); broadcasts.

    Shared conditioning: the exact s-integral from sigma_max down to sigma_min. Independent levels
    (u with a trailing level axis in the ladder's order): the ladder's step (module docstring);
    sigma_min and sigma_max are then the ladder's own extremes and the arguments are not used.
    """
    u = jnp.asarray(u)
    dtype = objective.dtype(u, sigma_min, sigma_max)
    u = u.astype(dtype)
    if objective.conditioning == "independent":
        s, _ = objective.sigma.nodes(dtype)
        order = jnp.argsort(-s)
        s = s[order]
        g = objective.gain(s.reshape((1,) * (u.ndim - 1) + s.shape), u[..., order])
        ratio = (s[1:] / s[:-1]).reshape((1,) * (g.ndim - 1) + (s.shape[0] - 1,))
        step = g[..., :-1] + ratio * (1.0 - g[..., :-1])
        return s[0] ** 2 * jnp.prod(step * step, axis=-1)
    i0, i1 = objective.flow_integrals(sigma_min, sigma_max)
    hi = jnp.asarray(sigma_max, dtype)
    return hi * hi * jnp.exp(2.0 * (i1 * u - i0))


def predict(t: ArrayLike, lam: ArrayLike, *, n: ArrayLike, alpha: ArrayLike, w0: ArrayLike = 1e-6,
            sigma: LogNormal | LogUniform | Ladder = LogNormal(), precond: Precond = "edm",
            sigma_data: ArrayLike = 0.5, depth: int = 2, sigma_min: ArrayLike = 0.002,
            sigma_max: ArrayLike = 80.0, weighting: Weighting | None = None,
            conditioning: Conditioning = "shared", start: tuple[ArrayLike, ArrayLike] | None = None,
            moments: tuple[ArrayLike, ArrayLike, ArrayLike, ArrayLike] | None = None) -> Prediction:
    """Predicted training of a linear denoiser across noise levels, and the variance it generates.

    Each eigen-direction of ``Sigma = X^T X`` follows the paper's dynamics with ``lam -> B`` and
    ``lam + eps -> A`` (:class:`Objective`): from a balanced start of product ``w0`` (every factor
    ``w0^(1/L)``), ``tau du/dt = L u |u|^(1-2/L) (B - A u)``, ``tau = n / alpha`` (depth 1:
    ``tau du/dt = B - A u``), solved by :func:`daedyn.theory.small_init_trajectory` (``noise=``). A
    direction with ``B < 0`` (under "edm": ``lam / n < sigma_data^2``) decays to 0 from a positive
    balanced start; from any other start (``start=(w1, w2)``, depth 2,
    :func:`daedyn.theory.dae_trajectory`) it learns ``B / A < 0`` (docs/diffusion.md).

    Args:
      t: times in epochs, >= 0 (any shape; one GD step of rate alpha on the full batch = 1 epoch).
      lam: eigenvalues of Sigma (sums over the n samples), >= 0 (any shape).
      n: number of training samples N, > 0.
      alpha: learning rate, > 0.
      w0: initial product of the factors, >= 0 (depth 1: any real); broadcasts with lam.
      sigma: the noise-level distribution (default EDM's ``LogNormal(-1.2, 1.2)``).
      precond: "edm" or "none" (:class:`Objective`).
      sigma_data: sd of "edm", > 0.
      depth: number of factors L >= 1 (static).
      sigma_min, sigma_max: the generation's range, ``0 < sigma_min < sigma_max``.
      weighting: "edm", "uniform", "s2" or None (the preconditioning's own, :class:`Objective`).
      conditioning: "shared" or "independent" (a Ladder only: one F per level).
      start: ``(w1, w2)`` per direction for the any-start solution (depth 2 only; ``w0`` unused).
      moments: the objective's :meth:`Objective.moments` computed beforehand, for many calls that
        share one noise-level distribution and preconditioning (a sweep over its parameters looks
        them up per grid point; docs/diffusion.md); None (default): computed here, once for all
        directions and times. Checked against the objective when both are concrete.
    Returns:
      a :class:`Prediction` (``w`` and ``variance`` of shape ``t.shape + lam.shape``).
    Raises:
      ValueError: for out-of-range concrete values, names, ``start`` at a depth other than 2, or
        ``moments`` that are not the objective's.
    Example:
      >>> r = predict(jnp.array([0.0, 1e6]), jnp.array([400.0, 10.0]), n=100, alpha=0.1, depth=2)
      >>> [round(float(x), 4) for x in r.w[1]]  # learned: B / A; the B < 0 direction decays to 0
      [0.4673, 0.0]
    """
    depth = check_int("depth", depth, 1)
    obj = Objective(sigma, precond, sigma_data, weighting, conditioning)
    check_range("t", t, 0.0)
    check_range("lam", lam, 0.0)
    check_range("n", n, 0.0, lo_open=True)
    check_range("alpha", alpha, 0.0, lo_open=True)
    check_range("sigma_min", sigma_min, 0.0, lo_open=True)
    check_range("sigma_max", sigma_max, 0.0, lo_open=True)
    lo, hi = concrete(sigma_min), concrete(sigma_max)
    if lo is not None and hi is not None and not np.all(lo < hi):
        raise ValueError(f"sigma_min must be < sigma_max; got {lo} and {hi}")
    if start is not None:
        if depth != 2:
            raise ValueError(f"start=(w1, w2) is the depth-2 any-start solution; got depth={depth} (at depth "
                             ">= 3 integrate the factors with daedyn.dynamics, noise=Objective(...))")
        w1, w2 = start
        check_finite("w1", w1)
        check_finite("w2", w2)
        check_broadcastable(lam=lam, w1=w1, w2=w2)
        init = (w1, w2)
    else:
        check_finite("w0", w0) if depth == 1 else check_range("w0", w0, 0.0)
        check_broadcastable(lam=lam, w0=w0)
        init = (w0,)
    dtype = obj.dtype(t, lam, n, alpha, *init, sigma_min, sigma_max)
    cast = lambda x: jnp.asarray(x, dtype)  # noqa: E731
    if moments is not None:
        moments = _check_moments(obj, moments, dtype)
    out = _predict_impl(obj, cast(t), cast(lam), cast(n), cast(alpha), tuple(map(cast, init)),
                        cast(sigma_min), cast(sigma_max), moments, depth=depth)
    check_output("predict", out.w)
    return out


def _check_moments(obj: Objective, moments, dtype) -> tuple[Array, Array, Array, Array]:
    """``moments`` as four arrays of the objective's moment shape, in ``dtype``; when they and the
    objective are concrete, equal to its own (relative 1e-5: a float32 sum of 1024 nodes in another
    order differs by ~1e-7)."""
    if not isinstance(moments, tuple | list) or len(moments) != 4:
        raise ValueError("moments must be the four arrays (alpha0, alpha2, beta0, beta2) of "
                         f"Objective.moments(); got {type(moments).__name__}")
    moments = tuple(jnp.asarray(x, dtype) for x in moments)
    want = jnp.shape(obj.sigma.sigmas) if obj.conditioning == "independent" else ()
    if any(x.shape != want for x in moments):
        raise ValueError(f"moments must have the shape {want} of Objective.moments(); got "
                         f"{[x.shape for x in moments]}")
    given = [concrete(x) for x in moments]
    leaves = [concrete(x) for x in jax.tree.leaves(obj)]
    if all(g is not None for g in given) and all(x is not None for x in leaves):
        own = _own_moments(obj, leaves, np.dtype(dtype))
        if not all(np.allclose(g, o, rtol=1e-5, atol=0.0) for g, o in zip(given, own)):
            raise ValueError("moments are not this objective's: give Objective(sigma, precond, sigma_data, "
                             "weighting, conditioning).moments() of the same arguments")
    return moments


_OWN: dict = {}  # the check's own moments of recent objectives (a few: each is four arrays)


def _own_moments(obj: Objective, leaves, dtype: np.dtype) -> list[np.ndarray]:
    """``obj.moments(dtype)`` as NumPy arrays, kept for the last few objectives, so the check of
    :func:`predict`'s ``moments=`` costs the quadrature the keyword saves once per objective, not once
    per call (the key: the objective's structure and the bytes of its concrete leaves)."""
    key = (jax.tree.structure(obj), dtype.str,
           tuple((np.asarray(x).dtype.str, np.shape(x), np.asarray(x).tobytes()) for x in leaves))
    if key not in _OWN:
        if len(_OWN) >= 16:
            _OWN.pop(next(iter(_OWN)))
        _OWN[key] = [np.asarray(x) for x in obj.moments(dtype)]
    return _OWN[key]


@ft.partial(jax.jit, static_argnames="depth")
def _predict_impl(obj, t, lam, n, alpha, init, sigma_min, sigma_max, moments, *, depth):
    """:func:`predict` after its checks, compiled once per shape (the theory calls run traced). The
    objective's moments (its quadrature over the noise levels) are computed once, or given, and
    shared by every direction and time."""
    independent = obj.conditioning == "independent"
    shared = _Shared(obj.moments(t.dtype) if moments is None else moments, independent)
    extra = (1,) if independent else ()
    t_b = t.reshape(t.shape + (1,) * lam.ndim + extra)

    def lead(x):  # a per-direction start against the trailing level axis
        return x[..., None] if independent and x.ndim else x

    tau = n / alpha
    if len(init) == 2:
        w = theory.dae_trajectory(t_b, lam, None, lead(init[0]), lead(init[1]), tau, noise=shared, n=n)
    else:
        w = theory.small_init_trajectory(t_b, lam, w0=lead(init[0]), tau=tau, n=n, depth=depth, noise=shared)
    a, b = shared.coefficients(lam, n)
    w = jnp.broadcast_to(w, t.shape + a.shape)
    v = generated_variance(w, obj, sigma_min=sigma_min, sigma_max=sigma_max)
    return Prediction(t, lam, w, v, a, b)
