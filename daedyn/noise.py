"""Input-noise models for denoising autoencoders: sampling with explicit keys, conversion to eps.

A :class:`Noise` is a pytree whose only leaf is the per-component ``variance`` s^2, so it can be
traced, vmapped over and differentiated (the samples are reparameterised as
``sqrt(variance) * unit_sample``). The noise *kind* (the unit-variance sampler) is static.

Beyond additive isotropic noise (docs/corruption.md, private module ``daedyn._corruption``):
:func:`masking` (input dropout), :func:`salt_and_pepper` and :func:`gaussian_covariance`
(per-component variances or a full covariance). Every noise object has ``corrupt(key, x)`` (the
corrupted clean inputs, for any network) and, where a linear network has one, ``marginal_term``:
the second-order term C of the marginalised loss (a scalar eps, a (D,) vector or a (D, D) matrix).

The paper's noise level is eps = N s^2 (Section 3): Gaussian N(0, sigma^2) gives eps = N sigma^2,
Laplace with scale b gives eps = 2 N b^2 (variance 2 b^2). Only the variance enters the dynamics of a
linear DAE trained on the marginalised (expected) loss, Eq. (1). :func:`eps_of` converts a noise
model to eps with the one variance-to-eps conversion, ``eps = n * variance`` (written once, here).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
import jax.random as jr
import jax.tree_util as jtu
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from daedyn._checks import (
    check_broadcastable,
    check_fit,
    check_output,
    check_range,
    check_representable,
    concrete,
    float_dtype,
)
from daedyn._corruption import (
    GaussianCovariance,
    Masking,
    SaltAndPepper,
    _check_basis,
    gaussian_covariance,
    masking,
    salt_and_pepper,
)

__all__ = ["Noise", "gaussian", "laplace", "custom", "eps_of", "as_noise", "masking", "salt_and_pepper",
           "gaussian_covariance"]


def _unit_gaussian(key, shape, dtype):
    return jr.normal(key, shape, dtype)


def _unit_laplace(key, shape, dtype):
    # Laplace(0, 1) has variance 2; divide by sqrt(2) for unit variance.
    return jr.laplace(key, shape, dtype) * jnp.asarray(1.0 / math.sqrt(2.0), dtype)


@jtu.register_pytree_node_class
class Noise:
    """Additive input noise with per-component variance ``variance`` (s^2 in the paper).

    Build one with :func:`gaussian`, :func:`laplace` or :func:`custom`. ``variance`` is the only
    pytree leaf (traceable, may carry batch axes for ``vmap``); ``kind`` and the unit sampler are
    static.

    Attributes:
      kind: "gaussian", "laplace" or "custom".
      variance: per-component variance s^2 (>= 0), any shape that broadcasts against samples'
        leading axes when vmapped; a scalar for a single run.
    """

    def __init__(self, kind: str, variance: ArrayLike, unit_sampler: Callable[..., Array]):
        self.kind = kind
        self.variance = variance
        self._unit_sampler = unit_sampler

    @property
    def unit_sampler(self) -> Callable[..., Array]:
        """The static unit-variance sampler ``(key, shape, dtype) -> Array`` of this kind of noise.

        Hashable (with :attr:`kind`), so ``(noise.kind, noise.unit_sampler)`` can key a compiled
        function that any variance reuses; ``Noise(kind, variance, unit_sampler)`` rebuilds the noise.
        """
        return self._unit_sampler

    def unit_sample(self, key: Array, shape: tuple[int, ...], dtype: Any = None) -> Array:
        """Noise with zero mean and unit variance per component (before scaling)."""
        dtype = jnp.float32 if dtype is None else dtype
        return jnp.asarray(self._unit_sampler(key, tuple(shape), dtype), dtype)

    def sample(self, key: Array, shape: tuple[int, ...], dtype: Any = None) -> Array:
        """Draw noise of ``shape``: ``sqrt(variance) * unit_sample`` (differentiable in variance).

        Args:
          key: a JAX PRNG key.
          shape: output shape, e.g. (N, D).
          dtype: floating dtype (default float32).
        Returns:
          Array of ``shape`` and ``dtype``.
        Example:
          >>> import jax.random as jr
          >>> x = gaussian(4.0).sample(jr.key(0), (100000,))
          >>> round(float(x.var()))  # std error of the estimate: 4 * sqrt(2 / 1e5) = 0.018
          4
        """
        dtype = jnp.float32 if dtype is None else dtype
        scale = jnp.sqrt(jnp.asarray(self.variance, dtype))
        return scale * self.unit_sample(key, shape, dtype)

    #: E[x~] / x: 1 for additive noise (the core's loss sees the network itself).
    mean_scale = 1.0

    def corrupt(self, key: Array, x: ArrayLike) -> Array:
        """``x + sample(key, x.shape, x.dtype)``: the corrupted inputs (float dtype of ``x``)."""
        x = jnp.asarray(x)
        x = x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(float_dtype(x))
        return x + self.sample(key, x.shape, x.dtype)

    def marginal_term(self, stats=None, n: ArrayLike | None = None, *, basis: str = "eigen") -> Array:
        """The scalar corruption term eps = n s^2 (isotropic, so the same in every basis).

        Args:
          stats: None or a :class:`daedyn.spectrum.Spectrum` (then n defaults to its n).
          n: number of training samples N, > 0.
          basis: "eigen" or "input" (checked; the value does not depend on it).
        Raises:
          ValueError: without n, or as :func:`eps_of`.
        Example:
          >>> float(gaussian(0.5).marginal_term(n=4))
          2.0
        """
        _check_basis(basis)
        n = getattr(stats, "n", None) if n is None else n
        if n is None:
            raise ValueError("n (the number of training samples) is needed: pass n= or a Spectrum")
        return eps_of(self, n)

    def direction_moments(self, lam: ArrayLike, n: ArrayLike) -> tuple[Array, Array]:
        """Per-direction quadratic-form coefficients (k, m) = (lam, lam + n s^2): additive isotropic
        noise keeps every eigen-direction of Sigma separate (docs/architecture.md).

        Example:
          >>> [float(x) for x in gaussian(0.5).direction_moments(2.0, n=4)]
          [2.0, 4.0]
        """
        lam = jnp.asarray(lam)
        eps = eps_of(self, n)
        return jnp.broadcast_to(lam, jnp.broadcast_shapes(lam.shape, eps.shape)), lam + eps

    def with_variance(self, variance: ArrayLike) -> Noise:
        """The same kind of noise with another per-component variance (>= 0, finite).

        Raises:
          ValueError: for a concrete negative, NaN or infinite variance.
        """
        check_range("variance", variance, 0.0)
        return Noise(self.kind, variance, self._unit_sampler)

    def tree_flatten(self):
        return (self.variance,), (self.kind, self._unit_sampler)

    @classmethod
    def tree_unflatten(cls, aux, children):
        return cls(aux[0], children[0], aux[1])

    def __repr__(self) -> str:
        return f"Noise(kind={self.kind!r}, variance={self.variance!r})"


def gaussian(sigma2: ArrayLike) -> Noise:
    """Gaussian noise N(0, sigma2) per component; eps = N sigma2.

    Args:
      sigma2: variance sigma^2 >= 0 (scalar or an array of values for a vmapped batch).
    Returns:
      A :class:`Noise` with ``variance = sigma2``.
    Raises:
      ValueError: if a concrete sigma2 is negative, NaN, inf or beyond the range of its dtype.
    Example:
      >>> gaussian(0.5).variance
      0.5
    """
    check_range("sigma2", sigma2, 0.0)
    check_representable("sigma2", sigma2, float_dtype(sigma2))
    return Noise("gaussian", sigma2, _unit_gaussian)


def laplace(b: ArrayLike) -> Noise:
    """Laplace noise with scale ``b`` (density exp(-|x|/b) / 2b); variance 2 b^2, eps = 2 N b^2.

    Args:
      b: scale b >= 0 (scalar or array).
    Returns:
      A :class:`Noise` with ``variance = 2 b**2``.
    Raises:
      ValueError: if a concrete b is negative, NaN, inf, or its variance 2 b**2 overflows the dtype.
    Example:
      >>> float(laplace(0.5).variance)
      0.5
    """
    check_range("b", b, 0.0)
    check_representable("b", b, float_dtype(b), underflow=False)
    with np.errstate(over="ignore"):  # an overflowing 2 b**2 is refused below, naming the variance
        variance = 2 * np.square(np.asarray(b, np.float64)) if concrete(b) is not None else b
    if concrete(b) is not None and not np.all(np.isfinite(variance)):
        raise ValueError(f"the variance 2 * b**2 = inf is outside the range of {float_dtype(b)}; "
                         "use a smaller b")
    check_representable("the variance 2 * b**2", variance, float_dtype(b), underflow=False)
    b = jnp.asarray(b) if concrete(b) is None else b
    return Noise("laplace", 2 * jnp.square(b), _unit_laplace)


def custom(sample_fn: Callable[[Array, tuple[int, ...], Any], ArrayLike], variance: float) -> Noise:
    """Noise drawn by a user sampler ``sample_fn(key, shape, dtype)`` with known per-component variance.

    The sampler must return zero-mean samples with per-component variance ``variance``; samples are
    rescaled internally to unit variance, so ``Noise.with_variance`` (and a traced variance in
    :func:`daedyn.train.train_fn`) rescales them.

    Args:
      sample_fn: pure function of (key, shape, dtype) returning an array of that shape.
      variance: the sampler's per-component variance, > 0 (a Python number).
    Returns:
      A :class:`Noise` of kind "custom".
    Raises:
      ValueError: if variance is not a positive finite number or sample_fn is not callable.
    Example:
      >>> import jax.random as jr
      >>> uniform = custom(lambda k, s, d: jr.uniform(k, s, d, -1.0, 1.0), variance=1 / 3)
      >>> round(float(uniform.sample(jr.key(1), (40000,)).var()), 2)
      0.33
    """
    if not callable(sample_fn):
        raise ValueError(f"sample_fn must be callable; got {type(sample_fn).__name__}")
    check_range("variance", variance, 0.0, math.inf, lo_open=True, hi_open=True)
    declared = float(variance)
    inv_std = 1.0 / math.sqrt(declared)

    def unit(key, shape, dtype):
        return jnp.asarray(sample_fn(key, shape, dtype), dtype) * jnp.asarray(inv_std, dtype)

    return Noise("custom", declared, unit)


def as_noise(noise: Noise | str | None, variance: ArrayLike | None = None) -> Noise | None:
    """Normalise a noise argument: a :class:`Noise`, a kind name ("gaussian"/"laplace") or None.

    A corruption object (:class:`Masking`, :class:`SaltAndPepper`, :class:`GaussianCovariance`) is
    returned as it is; it has no variance to set.
    """
    if isinstance(noise, Masking | SaltAndPepper | GaussianCovariance):
        if variance is not None:
            raise ValueError(f"a variance cannot be given for noise {noise.kind!r} (set its own parameters)")
        return noise
    if noise is None or isinstance(noise, Noise):
        return noise if variance is None or noise is None else noise.with_variance(variance)
    if isinstance(noise, str):
        samplers = {"gaussian": _unit_gaussian, "laplace": _unit_laplace}
        if noise not in samplers:
            raise ValueError(f"noise must be 'gaussian', 'laplace', a Noise or None; got {noise!r}")
        if variance is not None:
            check_range("variance", variance, 0.0)
        return Noise(noise, 0.0 if variance is None else variance, samplers[noise])
    raise ValueError(f"noise must be a daedyn.noise.Noise, 'gaussian', 'laplace' or None; got {noise!r}")


def eps_of(noise: Noise | None, n: ArrayLike) -> Array:
    """The paper's noise level eps = n s^2 for ``n`` training samples (0 for no noise).

    The conversion is ``n * noise.variance`` (the only variance-to-eps conversion in daedyn).

    Args:
      noise: a :class:`Noise` (its variance may carry batch axes) or None.
      n: number of training samples N, > 0.
    Returns:
      eps, with the broadcast shape and floating dtype of ``noise.variance`` and ``n``; a float
      scalar 0 for ``noise=None``.
    Raises:
      ValueError: if a concrete ``n <= 0`` or variance < 0, or their shapes do not broadcast.
    Example:
      >>> float(eps_of(laplace(0.5), 1000))  # 2 N b^2
      500.0
    """
    if noise is None:
        check_range("n", n, 0.0, lo_open=True)
        return jnp.zeros((), float_dtype())
    return _variance_eps(noise.variance, n)


def _variance_eps(var: ArrayLike, n: ArrayLike) -> Array:
    """``eps = n * var`` for any zero-mean noise with per-component variance ``var`` (section 3.3).

    Checks ``var >= 0`` and ``n > 0`` by name, that both fit the computation dtype and broadcast,
    and that the product does not overflow it.

    Example:
      >>> float(_variance_eps(0.5, 4))
      2.0
    """
    check_range("var", var, 0.0)
    check_range("n", n, 0.0, lo_open=True)
    shape = check_broadcastable(var=var, n=n)
    arrays = [jnp.asarray(v) for v in (var, n)]
    if any(jnp.iscomplexobj(a) for a in arrays):
        raise ValueError(f"expected real arguments; got dtype {jnp.result_type(*arrays)} for var, n")
    dtype = float_dtype(*arrays)
    check_fit(dtype, var=var, n=n)
    var, n = (jnp.broadcast_to(a.astype(dtype), shape) for a in arrays)
    return check_output("eps", n * var)
