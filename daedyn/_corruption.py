"""Corruptions beyond additive isotropic noise: masking, salt-and-pepper, Gaussian with a covariance.

Each corruption ``corrupt(key, x)``s clean inputs x (N, D) for any network, and, where a linear
network without biases has one, gives the marginalised second-order term C of the core's expected
loss (:mod:`daedyn._linear`), summed over the n samples like Sigma = sum_i x_i x_i^T:

    E sum_i ||x_i - W x~_i||^2 = sum_i ||x_i - W E[x~_i]||^2 + tr(W C W^T),  C = sum_i Cov(x~_i | x_i).

With E[x~_i] = x_i this is the core's loss with corruption term C (isotropic Gaussian noise of
variance s^2: C = n s^2 I = eps I, the paper's scaling).

- **Masking, inverted** (``rescale=True``): x~ = m x / (1 - p), m ~ Bernoulli(1 - p) per component.
  E[x~] = x and Var(x~_k) = x_k^2 (1 - p) / (1 - p)^2 - x_k^2 = x_k^2 p / (1 - p), so
  C = p / (1 - p) diag(Sigma) in the input basis and V^T C V in the eigenbasis (not diagonal there:
  directions couple).
- **Masking, raw** (``rescale=False``): x~ = m x. E[x~] = (1 - p) x, Var(x~_k) = p (1 - p) x_k^2, so the
  expected loss of W is sum ||x - (1-p) W x||^2 + p (1-p) tr(W diag(Sigma) W^T), which is the inverted
  case for W' = (1 - p) W: sum ||x - W' x||^2 + p / (1 - p) tr(W' diag(Sigma) W'^T). The corruption
  term is the same; the network the core's loss sees is W' (:attr:`Masking.mean_scale` = 1 - p). For
  L factors, W'_l = (1 - p)^(1/L) W_l maps one onto the other; under gradient flow that rescales time
  (tau' = tau / (1 - p)^(2/L)), the weight decay (gamma' = gamma / (1 - p)^(2/L)) and the start.
- **Salt-and-pepper**: each component is kept with probability 1 - p and otherwise set to ``low`` or
  ``high`` with equal probability. E[x~] = (1 - p) x + p (low + high) / 2: an affine map with a constant
  term, which the bias-free expected loss of the core cannot express. It can be sampled, not
  marginalised (:meth:`SaltAndPepper.marginal_term` raises).
- **Gaussian with a covariance**: x~ = x + z, z ~ N(0, S) with per-component variances (D,) or a full
  (D, D) symmetric positive semi-definite S. C = n S.

**Schedules.** A rate p or a covariance may be a :mod:`daedyn.schedules` schedule (p(t), S(t), t in
epochs; its values are checked like the constant's, the ones it takes on a run's epochs when they
are only known then). ``corruption.at(t)`` is the corruption in force at epoch t (the schedules
evaluated by their own ``__call__``); ``corrupt`` needs that value and refuses a scheduled
corruption. ``marginal_term`` of a scheduled corruption is the schedule t -> C(t): for masking
p(t) / (1 - p(t)) times the data's term (diag(Sigma), or V^T diag(Sigma) V, formed once), for a
covariance n S(t) (rotated piece by piece for a piecewise-constant or linear S, where rotating
commutes with the schedule; at every evaluation otherwise).
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
from jax import Array, lax
from jax.typing import ArrayLike

from daedyn._checks import (
    FLOAT64_HINT,
    check_finite,
    check_noise_term,
    check_output,
    check_range,
    check_representable,
    concrete,
    float_dtype,
)
from daedyn.schedules import Exponential, Function, Linear, PiecewiseConstant, is_schedule, schedule_values

__all__ = ["Masking", "SaltAndPepper", "GaussianCovariance", "masking", "salt_and_pepper",
           "gaussian_covariance", "diag_of_sigma", "rotate_term", "BASES", "check_eps_dims",
           "check_noise_term"]

BASES = ("eigen", "input")


# ----------------------------------------------------------------------------------------------
# The data a marginalised term depends on


def _is_spectrum(stats) -> bool:
    return all(hasattr(stats, a) for a in ("eigvals", "eigvecs", "n"))


def _check_basis(basis: str) -> str:
    if basis not in BASES:
        raise ValueError(f"basis must be 'eigen' or 'input'; got {basis!r}")
    return basis


def _resolve(stats, n, basis: str, kind: str):
    """(Sigma or None, V or None, n) from a Spectrum or a (D, D) Sigma, with n from the spectrum."""
    basis = _check_basis(basis)
    if stats is None:
        if basis == "eigen" and kind != "isotropic":
            raise ValueError(f"{kind} noise in basis='eigen' needs the data's spectrum: pass a "
                             "daedyn.spectrum.Spectrum as stats")
        return None, None, n
    if _is_spectrum(stats):
        return None, stats.eigvecs, stats.n if n is None else n
    sigma = jnp.asarray(stats)
    if sigma.ndim != 2 or sigma.shape[0] != sigma.shape[1]:
        raise ValueError(f"stats must be a daedyn.spectrum.Spectrum or the (D, D) second moment Sigma; "
                         f"got shape {sigma.shape}")
    if basis == "eigen":
        raise ValueError("basis='eigen' needs the eigenvectors: pass a daedyn.spectrum.Spectrum as "
                         "stats (a Sigma matrix gives the term in the input basis only)")
    return sigma, None, n


def diag_of_sigma(stats) -> Array:
    """diag(Sigma) (D,) from a Spectrum (sum_j V_kj^2 lam_j, no matmul) or a (D, D) Sigma."""
    if _is_spectrum(stats):
        v, lam = jnp.asarray(stats.eigvecs), jnp.asarray(stats.eigvals)
        return jnp.sum(v * v * lam[None, :], axis=1)
    return jnp.diagonal(jnp.asarray(stats))


def rotate_term(c: Array, v: Array) -> Array:
    """V^T C V for C given as a (D,) diagonal or a (D, D) matrix (float64-exact where the inputs are)."""
    hi = lax.Precision.HIGHEST
    vt_c = v.T * c[None, :] if c.ndim == 1 else jnp.matmul(v.T, c, precision=hi)
    out = jnp.matmul(vt_c, v, precision=hi)
    return (out + out.T) / 2  # exactly symmetric, like C


def check_eps_dims(eps, eps_dims, d: int) -> int:
    """Validate ``eps_dims`` (0, 1 or 2 trailing core dimensions of a corruption term) against the
    shape of ``eps`` and the input size D; return it as an int."""
    if isinstance(eps_dims, bool) or eps_dims not in (0, 1, 2):
        raise ValueError(f"eps_dims must be 0 (scalar eps), 1 ((D,) per direction) or 2 ((D, D) "
                         f"matrix); got {eps_dims!r}")
    shape = np.shape(eps)
    want = (d,) * eps_dims
    if eps_dims and shape[len(shape) - eps_dims:] != want or len(shape) < eps_dims:
        raise ValueError(f"eps with eps_dims={eps_dims} must have shape (..., {', '.join(['D'] * eps_dims)}) "
                         f"with D = {d}; got {shape}")
    return int(eps_dims)


def _schedule_values(name: str, s, ts=None):
    """The concrete values a schedule takes, for the range checks: a piecewise-constant schedule's
    pieces, a ramp's two ends, any other schedule on the times ``ts`` (None without them, or when
    traced); :func:`daedyn.schedules.schedule_values`."""
    if ts is None and not isinstance(s, PiecewiseConstant | Linear | Exponential):
        return None
    return schedule_values(name, s, None if ts is None else np.asarray(ts))


def _check_real(name: str, x) -> None:
    """A concrete ``x`` must hold real numbers: complex and boolean values are refused, naming it
    (NumPy orders complex numbers lexicographically, so a range check alone would let 0.3+0.1j in)."""
    v = concrete(x)
    if v is None:
        return
    if v.dtype == np.bool_ or np.iscomplexobj(v) or not np.issubdtype(v.dtype, np.number):
        raise ValueError(f"{name} must be a real number or an array of them; got dtype {v.dtype}"
                         + (f" ({v.item()!r})" if v.size == 1 else ""))


def _check_p(p, hi_open: bool = True, ts=None) -> None:
    if not is_schedule(p):
        _check_real("p", p)
        check_range("p", p, 0.0, 1.0, hi_open=hi_open)
        v = concrete(p)
        if hi_open and v is not None and v.size:
            # p just below 1 rounds to 1 in the computation dtype: the odds p / (1 - p) are infinite
            dtype = float_dtype(p)
            near = np.asarray(v, np.float64)[np.asarray(v, dtype) >= 1]
            if near.size:
                top = 1.0 - float(jnp.finfo(dtype).epsneg)
                raise ValueError(f"p = {float(near.flat[0])!r} rounds to 1 in {jnp.dtype(dtype).name}, where "
                                 f"the masking odds p / (1 - p) are infinite; use p <= {top:.9g}, or "
                                 f"{FLOAT64_HINT}")
        return
    values = _schedule_values("p", p, ts)
    if values is not None:  # a user function's values are checked on the run's epochs (check_schedules)
        check_range("p schedule values", values, 0.0, 1.0, hi_open=hi_open)


def _value_shape(x) -> tuple[int, ...]:
    """The shape of a parameter, or of one value of a schedule."""
    return tuple(x.shape) if is_schedule(x) else np.shape(x)


def _at(x, t):
    return x(t) if is_schedule(x) else x


class _Corruption:
    """What every corruption shares: parameters that may be schedules, evaluated by :meth:`at`."""

    kind = "corruption"

    @property
    def scheduled(self) -> bool:
        """Whether a parameter is a :mod:`daedyn.schedules` schedule (pytree structure: static)."""
        return any(is_schedule(leaf) for leaf in jtu.tree_leaves(self, is_leaf=is_schedule))

    def at(self, t: ArrayLike):
        """The corruption in force at time ``t`` (epochs): every schedule replaced by its value
        ``schedule(t)`` (unchanged without one). Pure: fine under jit, vmap and grad.

        Example:
          >>> from daedyn import schedules
          >>> float(masking(schedules.piecewise_constant([10.0], [0.1, 0.25])).at(12.0).p)
          0.25
        """
        return jtu.tree_map(lambda s: _at(s, t), self, is_leaf=is_schedule)

    def _refuse_scheduled(self, what: str) -> None:
        if self.scheduled:
            raise ValueError(f"noise {self.kind!r} has a schedule parameter: {what} needs its value at "
                             f"one epoch; use corruption.at(t) (epoch k of training uses at(k))")

    #: Why the per-direction engines cannot take this corruption exactly (None: they can).
    per_direction_refusal = ("its term does not commute with Sigma, so the eigen-directions couple and "
                             "no per-direction dynamics are exact")

    def direction_moments(self, lam: ArrayLike, n: ArrayLike) -> tuple[Array, Array]:
        """The per-direction quadratic-form coefficients (k, m) (docs/architecture.md, "One quadratic
        core"): refused with the reason for every corruption whose term couples the directions.

        Raises:
          ValueError: always here, naming the exact alternatives.
        """
        raise ValueError(f"noise {self.kind!r} in a per-direction engine: {self.per_direction_refusal}. "
                         f"Exact: daedyn.dynamics.matrix_gd / matrix_flow(spectrum, *factors, noise=...) "
                         f"or daedyn.train with marginalised=True; approximate: "
                         f"eps=daedyn.theory.diagonal_eps(noise.marginal_term(spectrum)) "
                         f"(docs/corruption.md)")

    def check_schedules(self, epochs: int) -> None:
        """Range-check a schedule parameter whose values were not known when it was built (a user
        function): its values at the epochs 0 .. epochs - 1 of a run (training calls this)."""
        for leaf, check in self._schedule_checks():
            if is_schedule(leaf):
                check(leaf, np.arange(max(int(epochs), 1)))


def _size_check(name: str, d: int, x) -> None:
    if np.shape(x)[-1:] != (d,):
        raise ValueError(f"x must have D = {d} components (the size of {name}); got shape {np.shape(x)}")


# ----------------------------------------------------------------------------------------------
# Masking


@jtu.register_pytree_node_class
class Masking(_Corruption):
    """Masking (input dropout) with drop rate ``p``; build with :func:`masking`.

    ``p`` is the only pytree leaf (traceable: the marginalised term is differentiable in p, the
    Bernoulli draw is not), or a schedule p(t) (its values the leaves). ``rescale`` is static.
    """

    kind = "masking"

    def __init__(self, p: ArrayLike, rescale: bool = True):
        self.p = p
        self.rescale = rescale

    @property
    def mean_scale(self):
        """E[x~] / x: 1 for inverted dropout, 1 - p for the raw mask (the core sees W' = mean_scale W)."""
        if self.rescale:
            return 1.0
        self._refuse_scheduled("mean_scale")
        return 1.0 - jnp.asarray(self.p)

    def _schedule_checks(self):
        return ((self.p, lambda s, ts: _check_p(s, ts=ts)),)

    def corrupt(self, key: Array, x: ArrayLike) -> Array:
        """Masked inputs m x / (1 - p) (or m x), m ~ Bernoulli(1 - p) per entry of ``x``; dtype of x.

        Raises:
          ValueError: for a scheduled p (corrupt with ``at(t)``, the rate in force at epoch t).
        """
        self._refuse_scheduled("corrupt")
        x = jnp.asarray(x)
        x = x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.result_type(float))
        keep = jnp.asarray(1.0, x.dtype) - jnp.asarray(self.p, x.dtype)
        m = jr.bernoulli(key, keep, x.shape)
        kept = x / keep if self.rescale else x
        return jnp.where(m, kept, jnp.zeros((), x.dtype))

    def marginal_term(self, stats, n: ArrayLike | None = None, *,
                      basis: Literal["eigen", "input"] = "eigen") -> Array:
        """The marginalised corruption term C = p / (1 - p) diag(Sigma) (module docstring).

        For ``rescale=False`` the same C goes with the network W' = (1 - p) W (:attr:`mean_scale`).
        For a scheduled p it is the schedule t -> p(t) / (1 - p(t)) B, B = diag(Sigma) (or
        V^T diag(Sigma) V), formed once here.

        Args:
          stats: a :class:`daedyn.spectrum.Spectrum` or the (D, D) summed second moment Sigma
            (input basis only).
          n: unused (diag(Sigma) is already a sum over the samples); accepted for a uniform API.
          basis: "eigen" (V^T C V, (D, D)) or "input" (the diagonal, (D,)).
        Returns:
          C in the requested basis, in the paper's (summed) scaling; a
          :class:`daedyn.schedules.Function` of t for a scheduled p.
        Example:
          >>> import jax.numpy as jnp
          >>> from daedyn import schedules
          >>> sigma = jnp.array([[2.0, 1.0], [1.0, 4.0]])
          >>> masking(0.5).marginal_term(sigma, basis="input").tolist()
          [2.0, 4.0]
          >>> p = schedules.piecewise_constant([10.0], [0.5, 0.2])
          >>> c = masking(p).marginal_term(sigma, basis="input")  # a schedule of terms
          >>> c(12.0).tolist()  # 0.2 / 0.8 diag(Sigma)
          [0.5, 1.0]
        """
        _, v, _ = _resolve(stats, n, basis, self.kind)
        diag = diag_of_sigma(stats)
        if is_schedule(self.p):
            base = diag if basis == "input" else rotate_term(diag, jnp.asarray(v))
            if isinstance(self.p, PiecewiseConstant):  # piece by piece: a piecewise term (exact jumps)
                return PiecewiseConstant(self.p.boundaries, _odds_times(self.p.starts(), self.p, base))
            return Function((self.p, base), _odds_times)
        p = jnp.asarray(self.p, diag.dtype)
        c = p / (1 - p) * diag
        c = c if basis == "input" else rotate_term(c, jnp.asarray(v))
        return check_output("masking marginal_term p / (1 - p) diag(Sigma)", c)

    def tree_flatten(self):
        return (self.p,), (self.rescale,)

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(children[0], aux[0])

    def __repr__(self) -> str:
        return f"Masking(p={self.p!r}, rescale={self.rescale})"


def _odds_times(t, p, base):
    """p(t) / (1 - p(t)) * base: the term of a masking-rate schedule (``fn`` of a Function)."""
    q = jnp.asarray(p(t), base.dtype)
    q = q.reshape(q.shape + (1,) * base.ndim)
    return q / (1 - q) * base.reshape((1,) * (q.ndim - base.ndim) + base.shape)  # explicit ranks


def masking(p: ArrayLike, *, rescale: bool = True) -> Masking:
    """Masking noise: each input component is dropped (set to 0) with probability ``p``.

    Args:
      p: drop rate in [0, 1) (scalar, or an array for a vmapped batch), or a
        :mod:`daedyn.schedules` schedule p(t) whose values lie in [0, 1) (a piecewise-constant
        schedule's pieces and a ramp's ends are checked here, a function's values by training on
        the run's epochs).
      rescale: True (inverted dropout, x~ = m x / (1 - p), E[x~] = x) or False (x~ = m x).
    Returns:
      A :class:`Masking`.
    Raises:
      ValueError: for a concrete p outside [0, 1) or NaN (``p schedule values`` for a schedule), or a
        non-bool ``rescale``.
    Example:
      >>> import jax.numpy as jnp, jax.random as jr
      >>> masking(0.5).corrupt(jr.key(0), jnp.ones(6)).tolist()  # kept entries are scaled by 2
      [0.0, 0.0, 2.0, 2.0, 0.0, 2.0]
    """
    _check_p(p)
    if not isinstance(rescale, bool):
        raise ValueError(f"rescale must be True or False; got {rescale!r}")
    return Masking(p, rescale)


# ----------------------------------------------------------------------------------------------
# Salt-and-pepper


@jtu.register_pytree_node_class
class SaltAndPepper(_Corruption):
    """Salt-and-pepper noise; build with :func:`salt_and_pepper`. ``p`` (a number, an array or a
    schedule) is the pytree leaf."""

    kind = "salt_and_pepper"

    def __init__(self, p: ArrayLike, low: float = 0.0, high: float = 1.0):
        self.p = p
        self.low = low
        self.high = high

    @property
    def mean_scale(self):
        self._refuse_scheduled("mean_scale")
        return 1.0 - jnp.asarray(self.p)

    def _schedule_checks(self):
        return ((self.p, lambda s, ts: _check_p(s, hi_open=False, ts=ts)),)

    def corrupt(self, key: Array, x: ArrayLike) -> Array:
        """``x`` with each entry replaced, with probability p, by ``low`` or ``high`` (equally likely).

        Raises:
          ValueError: for a scheduled p (corrupt with ``at(t)``).
        """
        self._refuse_scheduled("corrupt")
        x = jnp.asarray(x)
        x = x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.result_type(float))
        k1, k2 = jr.split(key)
        hit = jr.bernoulli(k1, jnp.asarray(self.p, x.dtype), x.shape)
        salt = jr.bernoulli(k2, 0.5, x.shape)
        value = jnp.where(salt, jnp.asarray(self.high, x.dtype), jnp.asarray(self.low, x.dtype))
        return jnp.where(hit, value, x)

    per_direction_refusal = ("its mean (1 - p) x + p (low + high) / 2 is affine, which the bias-free "
                             "quadratic core cannot express")

    def marginal_term(self, stats=None, n=None, *, basis="eigen"):
        """Refused: see the module docstring (the corrupted mean has a constant term).

        Raises:
          ValueError: always, naming the noise kind and the reason.
        """
        raise ValueError(
            "noise 'salt_and_pepper' cannot be marginalised for a linear network without biases: "
            f"E[x~] = (1 - p) x + p (low + high) / 2 = (1 - p) x + {self._mid()} p is affine, and the "
            "expected loss of the core has no constant term; sample it instead (marginalised=False)")

    def _mid(self) -> str:
        return f"{(self.low + self.high) / 2:g}"

    def tree_flatten(self):
        return (self.p,), (self.low, self.high)

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(children[0], *aux)

    def __repr__(self) -> str:
        return f"SaltAndPepper(p={self.p!r}, low={self.low}, high={self.high})"


def salt_and_pepper(p: ArrayLike, *, low: float = 0.0, high: float = 1.0) -> SaltAndPepper:
    """Salt-and-pepper noise: each component becomes ``low`` or ``high`` with probability p / 2 each.

    Args:
      p: corruption rate in [0, 1], or a :mod:`daedyn.schedules` schedule with values in [0, 1].
      low, high: the pepper and salt values, finite numbers with low < high (the data's value
        range: 0 and 1 for images scaled to [0, 1]).
    Returns:
      A :class:`SaltAndPepper` (sampling only: it has no marginalised form, see
      :meth:`SaltAndPepper.marginal_term`).
    Raises:
      ValueError: for p outside [0, 1] (``p schedule values`` for a schedule), non-finite low/high
        or low >= high.
    Example:
      >>> import jax.numpy as jnp, jax.random as jr
      >>> salt_and_pepper(0.5).corrupt(jr.key(0), jnp.full(6, 0.5)).tolist()
      [0.5, 1.0, 0.0, 1.0, 1.0, 0.5]
    """
    _check_p(p, hi_open=False)
    for name, value in (("low", low), ("high", high)):
        if np.ndim(value) != 0:
            raise ValueError(f"{name} must be a number; got shape {np.shape(value)}")
        check_finite(name, value)
    if not float(low) < float(high):
        raise ValueError(f"salt_and_pepper needs low < high (the data's value range); got low={low}, "
                         f"high={high}")
    return SaltAndPepper(p, float(low), float(high))


# ----------------------------------------------------------------------------------------------
# Gaussian with per-component variances or a full covariance


def _check_cov_values(name: str, values, ndim: int) -> None:
    """Variances (..., D) >= 0, or (..., D, D) symmetric positive semi-definite matrices."""
    if ndim == 1:
        check_range(name, values, 0.0)
    else:
        check_noise_term(name, values, 2)


def _check_covariance(cov, ts=None) -> None:
    shape = _value_shape(cov)
    if len(shape) not in (1, 2) or (len(shape) == 2 and shape[0] != shape[1]):
        raise ValueError("cov must be (D,) per-component variances or a (D, D) covariance; "
                         f"got shape {shape}")
    if shape[0] < 1:
        raise ValueError("cov must have D >= 1 components; got an empty array")
    if not is_schedule(cov):
        _check_real("cov", cov)
        _check_cov_values("cov", cov, len(shape))
        check_representable("cov", cov, float_dtype(cov))  # 1e300 would be inf in float32
        return
    if len(shape) == 2 and isinstance(cov, Exponential):
        raise ValueError("cov: an exponential schedule of a (D, D) covariance interpolates its entries "
                         "geometrically, which does not keep it positive semi-definite; use "
                         "piecewise_constant(..., matrix=True), linear (entries >= 0) or function "
                         "(per-component (D,) variances may ramp exponentially)")
    values = _schedule_values("cov", cov, ts)
    if values is not None:  # pieces or a ramp's ends (a linear ramp between PSD matrices stays PSD)
        _check_cov_values("cov schedule values", values, len(shape))


def _scaled(t, cov, n):
    """n cov(t): the input-basis term of a covariance schedule (``fn`` of a Function)."""
    return n * jnp.asarray(cov(t), n.dtype)


def _scaled_rotated(t, cov, n, v):
    """n V^T cov(t) V: the eigenbasis term of a covariance schedule, rotated at every evaluation."""
    c = jnp.asarray(cov(t), n.dtype)
    rot = lambda a: rotate_term(a, v)
    for _ in range(c.ndim - len(cov.shape)):  # the leading axes of the times t
        rot = jax.vmap(rot)
    return n * rot(c)


def _term_schedule(cov, n, v):
    """The schedule t -> n cov(t) (``v`` None) or n V^T cov(t) V. A linear map commutes with a
    piecewise-constant or a linear schedule, so those are mapped once (each piece, each end)."""
    f = (lambda c: n * jnp.asarray(c, n.dtype)) if v is None else (
        lambda c: n * rotate_term(jnp.asarray(c, n.dtype), v))
    if isinstance(cov, PiecewiseConstant):
        return PiecewiseConstant(jnp.asarray(cov.boundaries, n.dtype), jax.vmap(f)(cov.values))
    if isinstance(cov, Linear):
        return Linear(f(cov.start), f(cov.end), jnp.asarray(cov.t_end, n.dtype))
    return Function((cov, n), _scaled) if v is None else Function((cov, n, v), _scaled_rotated)


@jtu.register_pytree_node_class
class GaussianCovariance(_Corruption):
    """Additive Gaussian noise N(0, cov); build with :func:`gaussian_covariance`. ``cov`` (an array
    or a schedule of them) is the leaf."""

    kind = "gaussian_covariance"
    mean_scale = 1.0

    def __init__(self, cov: ArrayLike):
        self.cov = cov

    @property
    def dim(self) -> int:
        return int(_value_shape(self.cov)[0])

    def _schedule_checks(self):
        return ((self.cov, _check_covariance),)

    def corrupt(self, key: Array, x: ArrayLike) -> Array:
        """``x + z`` with z ~ N(0, cov) per row of ``x`` (..., D); dtype of x.

        Raises:
          ValueError: if x does not have D components, or for a scheduled cov (use ``at(t)``).
        """
        self._refuse_scheduled("corrupt")
        x = jnp.asarray(x)
        x = x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.result_type(float))
        _size_check("cov", self.dim, x)
        z = jr.normal(key, x.shape, x.dtype)
        cov = jnp.asarray(self.cov, x.dtype)
        if cov.ndim == 1:
            return x + z * jnp.broadcast_to(jnp.sqrt(cov), z.shape)
        s, u = jnp.linalg.eigh((cov + cov.T) / 2)
        root = u * jnp.sqrt(jnp.maximum(s, 0.0))[None, :]  # root root^T = cov
        return x + jnp.matmul(z, root.T, precision=lax.Precision.HIGHEST)

    def marginal_term(self, stats=None, n: ArrayLike | None = None, *,
                      basis: Literal["eigen", "input"] = "eigen") -> Array:
        """C = n cov: (D,) or (D, D) in the input basis, V^T C V (D, D) in the eigenbasis; for a
        scheduled cov the schedule t -> C(t) (module docstring).

        Args:
          stats: a Spectrum (gives n and V), or None with ``basis="input"`` and ``n`` given.
          n: number of training samples N (> 0; taken from the spectrum when None).
          basis: "eigen" or "input".
        Raises:
          ValueError: without n, for n <= 0, or if the spectrum's D differs from cov's.
        Example:
          >>> gaussian_covariance([0.5, 0.25]).marginal_term(n=4, basis="input").tolist()
          [2.0, 1.0]
        """
        _, v, n = _resolve(stats, n, basis, self.kind)
        if n is None:
            raise ValueError("n (the number of training samples) is needed: pass n= or a Spectrum")
        check_range("n", n, 0.0, lo_open=True)
        if stats is not None and np.shape(stats.eigvecs if _is_spectrum(stats) else stats)[-1] != self.dim:
            raise ValueError(f"cov has D = {self.dim} components but the data has "
                             f"{np.shape(stats.eigvecs if _is_spectrum(stats) else stats)[-1]}")
        if is_schedule(self.cov):
            dt = jnp.result_type(*jtu.tree_leaves(self.cov), float)
            v = None if basis == "input" else jnp.asarray(v, dt)
            return _term_schedule(self.cov, jnp.asarray(n, dt), v)
        cov = jnp.asarray(self.cov)
        cov = cov if jnp.issubdtype(cov.dtype, jnp.floating) else cov.astype(jnp.result_type(float))
        c = jnp.asarray(n, cov.dtype) * cov
        c = c if basis == "input" else rotate_term(c, jnp.asarray(v, cov.dtype))
        return check_output("gaussian_covariance marginal_term n cov", c)

    def tree_flatten(self):
        return (self.cov,), ()

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(children[0])

    def __repr__(self) -> str:
        what = f"a {type(self.cov).__name__} schedule of shape" if is_schedule(self.cov) else "shape"
        return f"GaussianCovariance(cov {what} {_value_shape(self.cov)})"


def gaussian_covariance(cov: ArrayLike) -> GaussianCovariance:
    """Additive Gaussian noise with per-component variances (D,) or a full covariance (D, D).

    Args:
      cov: (D,) variances >= 0, or a (D, D) symmetric positive semi-definite covariance; or a
        :mod:`daedyn.schedules` schedule of either (every piece, or a ramp's ends, checked like the
        constant, a function's values on a run's epochs; a (D, D) schedule: piecewise constant
        with ``matrix=True``, linear or a function, not exponential).
    Returns:
      A :class:`GaussianCovariance`.
    Raises:
      ValueError: for another shape, NaN or inf, negative variances, an asymmetric or indefinite
        matrix (tolerance 1e3 machine epsilons of the largest entry); ``cov schedule values`` for a
        schedule's.
    Example:
      >>> import jax.numpy as jnp, jax.random as jr
      >>> x = gaussian_covariance(jnp.array([[1.0, 0.9], [0.9, 1.0]])).corrupt(jr.key(0),
      ...                                                                     jnp.zeros((20000, 2)))
      >>> round(float(jnp.corrcoef(x.T)[0, 1]), 2)
      0.9
    """
    _check_covariance(cov)
    return GaussianCovariance(cov)


# ----------------------------------------------------------------------------------------------
# Per-direction coefficients for the engines


def _moments_fn(t, noise, lam, n, which):
    """k (which = 0) or m (1) of ``noise.at(t)`` (the ``fn`` of a Function schedule): time axes of
    ``t`` lead, the per-direction shape follows."""
    t = jnp.asarray(t)
    one = lambda s: noise.at(s).direction_moments(lam, n)[which]  # noqa: E731
    if t.ndim == 0:
        return one(t)
    return jax.vmap(one)(t.reshape(-1)).reshape(t.shape + jnp.shape(one(t.reshape(-1)[0])))


def direction_moments(noise, lam, n):
    """(k, m) of ``noise`` per direction, each an array or, for a scheduled corruption, a schedule
    (piecewise constant on the merged pieces of piecewise-constant parameters, else a function of t).

    ``noise`` is any value with ``direction_moments(lam, n) -> (k, m)`` (a :class:`daedyn.noise.Noise`,
    a diffusion objective, ...); one that cannot be exact per direction raises there, with the reason.
    """
    if not hasattr(noise, "direction_moments"):
        raise ValueError(f"noise must be a corruption value (daedyn.noise.gaussian(...), ...) with per-"
                         f"direction moments; got {type(noise).__name__} (a number or schedule is eps=)")
    leaves = [x for x in jtu.tree_leaves(noise, is_leaf=is_schedule) if is_schedule(x)]
    if not leaves:
        return noise.direction_moments(lam, n)
    noise.at(0.0).direction_moments(lam, n)  # the refusals and checks of the constant value, once
    if all(isinstance(x, PiecewiseConstant) for x in leaves):
        bounds = jnp.sort(jnp.concatenate([x.boundaries for x in leaves]))
        starts = jnp.concatenate([jnp.zeros((1,), bounds.dtype), bounds])
        k, m = (_moments_fn(starts, noise, lam, n, i) for i in (0, 1))
        return PiecewiseConstant(bounds, k), PiecewiseConstant(bounds, m)
    return Function((noise, lam, n), _k_of), Function((noise, lam, n), _m_of)


def _k_of(t, noise, lam, n):
    return _moments_fn(t, noise, lam, n, 0)


def _m_of(t, noise, lam, n):
    return _moments_fn(t, noise, lam, n, 1)
