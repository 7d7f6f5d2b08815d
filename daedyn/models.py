"""One-hidden-layer autoencoders as pure ``init(..., key=)`` / ``apply(params, x)`` functions.

Paper convention (column vectors): W1 is H x D, W2 is D x H and the linear map is W = W2 W1.
Data are rows of X (N x D), so a reconstruction is ``act(X @ W1.T + b1) @ W2.T + b2``. Biases are
off by default, as in the paper's experiments; weights are drawn from N(0, scale^2) with an explicit
key (Figure 5 uses scale 1e-4, Figure 6 uses 1e-3).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from daedyn import _linear
from daedyn._checks import INT_MAX, check_int, check_range, float_dtype, renamed

__all__ = ["init_autoencoder", "get_activation", "is_linear", "reconstruct", "weights", "widths"]

Params = dict[str, Array]
Activation = str | Callable[[Array], Array] | None


def _identity(z: Array) -> Array:
    return z


def is_linear(activation: Activation) -> bool:
    """True for the linear network (``None``, ``"linear"`` or ``"identity"``)."""
    return activation is None or (isinstance(activation, str) and activation in ("linear", "identity"))


#: Elementwise activations of ``jax.nn`` accepted by name (a whitelist: names are never looked up
#: as arbitrary attributes, so "softmax", "one_hot" or "__class__" are refused, not run).
_ACTIVATIONS = ("relu", "relu6", "tanh", "sigmoid", "softplus", "sparse_plus", "sparse_sigmoid",
               "soft_sign", "silu", "swish", "log_sigmoid", "leaky_relu", "hard_sigmoid", "hard_silu",
               "hard_swish", "hard_tanh", "elu", "celu", "selu", "gelu", "mish", "squareplus",
               "identity")


def get_activation(activation: Activation) -> Callable[[Array], Array]:
    """Resolve an activation: None/"linear" (identity), an elementwise ``jax.nn`` function by name
    (one of :data:`_ACTIVATIONS`: "relu", "tanh", ...), or any callable applied elementwise.

    Raises:
      ValueError: for a name outside :data:`_ACTIVATIONS` (or one this JAX lacks).
    Example:
      >>> float(get_activation("relu")(jnp.asarray(-2.0)))
      0.0
    """
    if is_linear(activation):
        return _identity
    if callable(activation):
        return activation
    if isinstance(activation, str):
        fn = getattr(jax.nn, activation, None) if activation in _ACTIVATIONS else None
        if fn is None and activation == "tanh":
            fn = jnp.tanh
        if callable(fn):
            return fn
        raise ValueError(
            f"activation must be None, 'linear', a callable or an elementwise function name in jax.nn "
            f"(one of {', '.join(_ACTIVATIONS)}); got {activation!r}"
        )
    raise ValueError(f"activation must be None, a string or a callable; got {type(activation).__name__}")


def weights(params: Params) -> tuple[Array, ...]:
    """The weight matrices ``(W_1, ..., W_L)`` of a network (keys "w1" .. "wL"), encoder first.

    Example:
      >>> [w.shape for w in weights(init_autoencoder(5, (4, 3), key=jr.key(0)))]
      [(4, 5), (3, 4), (5, 3)]
    """
    count = sum(1 for k in params if k.startswith("w") and k[1:].isdigit())
    return tuple(params[f"w{l}"] for l in range(1, count + 1))


def widths(h) -> tuple[int, ...]:
    """Hidden widths as a tuple: an int H is one hidden layer (depth 2), a sequence one per hidden layer.

    Raises:
      ValueError: naming ``hidden`` for anything else, or a width < 1.
    """
    if isinstance(h, int | np.integer | float) and not isinstance(h, bool):
        hs = (h,)
    elif isinstance(h, list | tuple) and len(h) >= 1:
        hs = tuple(h)
    else:
        raise ValueError(f"hidden must be a width (integer >= 1) or a list of widths, one per hidden layer; "
                         f"got {h!r}")
    for i, v in enumerate(hs):
        where = "hidden" if len(hs) == 1 and not isinstance(h, list | tuple) else f"hidden[{i}]"
        if isinstance(v, bool) or not isinstance(v, int | np.integer):
            raise ValueError(f"{where} must be an integer >= 1; got {v!r}")
        check_range(where, v, 1)
        check_int(where, v, 1)  # <= 2**31 - 1 too
    return tuple(int(v) for v in hs)


@renamed(scale="init_scale")
def init_autoencoder(d: int, h: int | Sequence[int], *, key: Array, init_scale: ArrayLike = 1e-4,
                     bias: bool = False, dtype: Any = None) -> Params:
    """Random weights of a D -> H -> D autoencoder (or D -> H_1 -> ... -> D), entries i.i.d.
    N(0, init_scale^2).

    Args:
      d: input dimension D (>= 1).
      h: hidden units H (>= 1), or a list of widths (H_1, ..., H_{L-1}) for a deep network of L weight
        matrices "w1" .. "wL" (and biases "b1" .. "bL" when ``bias``). One width gives exactly the
        depth-2 network (same keys and draws).
      key: JAX PRNG key (required; split into one key per weight matrix).
      init_scale: standard deviation of the entries (>= 0); the paper uses 1e-4 (linear, Figure 5)
        and 1e-3 (nonlinear, Figure 6). (The keyword ``scale`` is deprecated.)
      bias: add zero-initialised biases ``b1`` (H,) and ``b2`` (D,) (off in the paper).
      dtype: floating dtype (default: JAX's default float, float32; float64 in 64-bit mode).
    Returns:
      ``{"w1": (H, D), "w2": (D, H)}`` (+ ``"b1"``, ``"b2"`` when ``bias``).
    Raises:
      ValueError: for d or h < 1, a negative init_scale or a non-floating dtype.
    Example:
      >>> p = init_autoencoder(5, 3, key=jr.key(0), init_scale=1e-3)
      >>> p["w1"].shape, p["w2"].shape
      ((3, 5), (5, 3))
    """
    check_range("d", d, 1)
    hs = widths(h)
    sizes = (int(d),) + hs + (int(d),)
    n_weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    if n_weights > INT_MAX:  # XLA indexes an array with 32-bit integers; such a model would abort the process
        raise ValueError(f"hidden: the widths {list(hs)} at D = {int(d)} give {n_weights} weights, more than "
                         f"{INT_MAX} (2**31 - 1); use fewer hidden units")
    scale = init_scale
    check_range("init_scale", scale, 0.0)
    dtype = float_dtype(dtype=dtype)
    if len(hs) > 1:
        keys = jr.split(key, len(sizes) - 1)
        scale = jnp.asarray(scale, dtype)
        params = {f"w{l + 1}": scale * jr.normal(keys[l], (sizes[l + 1], sizes[l]), dtype)
                  for l in range(len(sizes) - 1)}
        if bias:
            params.update({f"b{l + 1}": jnp.zeros((sizes[l + 1],), dtype) for l in range(len(sizes) - 1)})
        return params
    h = hs[0]
    k1, k2 = jr.split(key)
    scale = jnp.asarray(scale, dtype)
    params = {"w1": scale * jr.normal(k1, (int(h), int(d)), dtype),
              "w2": scale * jr.normal(k2, (int(d), int(h)), dtype)}
    if bias:
        params["b1"] = jnp.zeros((int(h),), dtype)
        params["b2"] = jnp.zeros((int(d),), dtype)
    return params


def _encode(params: Params, x: ArrayLike, activation: Activation = None, *,
           precision: Any = None) -> Array:
    """Hidden representation ``act(x @ W1.T + b1)`` of rows ``x`` (..., D) -> (..., H)."""
    act = get_activation(activation)
    z = jnp.matmul(x, params["w1"].T, precision=precision)
    if "b1" in params:
        z = z + jnp.broadcast_to(params["b1"], z.shape)  # explicit: rank promotion may be disabled
    return act(z)


def _deep_reconstruct(params: Params, x, activation, precision) -> Array:
    act = get_activation(activation)
    ws = weights(params)
    z = x
    for l, w in enumerate(ws, start=1):
        z = jnp.matmul(z, w.T, precision=precision)
        if f"b{l}" in params:
            z = z + jnp.broadcast_to(params[f"b{l}"], z.shape)
        if l < len(ws):
            z = act(z)
    return z


def reconstruct(params: Params, x: ArrayLike, activation: Activation = None, *,
                precision: Any = None) -> Array:
    """Reconstruction ``act(x @ W1.T + b1) @ W2.T + b2`` of rows ``x`` (..., D).

    Args:
      params: from :func:`init_autoencoder`.
      x: inputs, rows are samples (..., D).
      activation: None/"linear", a ``jax.nn`` name or a callable (hidden layer only; the output
        layer is linear).
      precision: matmul precision (``None``, "default", "high", "highest" or a ``jax.lax.Precision``).
    Returns:
      Array with the shape of ``x``.
    Example:
      >>> p = {"w1": jnp.eye(2), "w2": 2 * jnp.eye(2)}
      >>> reconstruct(p, jnp.array([[1.0, -1.0]]), "relu").tolist()
      [[2.0, 0.0]]
    """
    if "w3" in params or "w2" not in params:  # deep (or one factor): an activation after every hidden layer
        return _deep_reconstruct(params, x, activation, precision)
    z = _encode(params, x, activation, precision=precision)
    out = jnp.matmul(z, params["w2"].T, precision=precision)
    if "b2" in params:
        out = out + jnp.broadcast_to(params["b2"], out.shape)
    return out


def _end_to_end(params: Params, *, precision: Any = None) -> Array:
    """The linear network's map W = W2 W1 (D x D); W_L ... W_1 for a deep one.

    Example:
      >>> _end_to_end({"w1": jnp.array([[1.0, 2.0]]), "w2": jnp.array([[3.0], [4.0]])}).tolist()
      [[3.0, 6.0], [4.0, 8.0]]
    """
    return _linear.product(weights(params), _linear.matmul_fn(precision))
