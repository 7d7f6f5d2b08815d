"""Real training of a denoiser across noise levels, through :mod:`daedyn.train`'s one training loop.

Per example and step the objective draws ``samples`` noise levels ``s ~ p(s)`` (the
:class:`Objective`'s distribution) and directions ``n ~ N(0, I)`` and scores

    (1/(2B)) sum_i (1/S) sum_k w(s_ik) ||D(x_i + s_ik n_ik; s_ik) - x_i||^2,
    D(x~; s) = c_skip(s) x~ + c_out(s) F(c_in(s) x~),

an unbiased estimate of the expected loss ``(1/(2N)) [A u^2 - 2 B u + const]`` per direction, whose
gradient descent with rate alpha is the predicted dynamics with ``tau = N / alpha``
(:func:`~daedyn.diffusion.predict`). F is one of :mod:`daedyn.models`' networks (linear of depth L >= 1
or with an activation). The draw is a value of the training loop's corruption protocol
(:class:`Denoising`: ``corrupt(key, x)`` draws, ``squared_error(draw, x, f)`` scores), so full-batch
and minibatch runs, optax optimisers and the per-epoch keys ``fold_in(key, epoch)`` are
:func:`daedyn.train.train_fn`'s. :func:`train` runs it record by record inside one ``lax.scan`` and
keeps F at every record; a linear F's generated variance there comes from the exact flow
(:mod:`daedyn.diffusion._sample`).
"""

from __future__ import annotations

import dataclasses
import functools as ft
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from daedyn import models
from daedyn._checks import check_int, check_range
from daedyn.diffusion._objective import Objective
from daedyn.diffusion._predict import generated_variance
from daedyn.diffusion._sample import linear_flow_variance

__all__ = ["Denoising", "DenoiserRun", "train"]


@dataclasses.dataclass(frozen=True)
class Denoising:
    """The sampled diffusion objective as a corruption of :mod:`daedyn.train`'s loop (a pytree: the
    objective's numbers are traced, ``samples`` is static).

    Args:
      objective: the :class:`Objective` (shared conditioning).
      samples: draws (s, n) per example and step, S >= 1.
    """

    objective: Objective
    samples: int = 1
    kind = "diffusion"

    def corrupt(self, key: Array, x: Array) -> tuple[Array, Array]:
        """The draw for rows x (B, D): levels s (B, S) and unit directions n (B, S, D)."""
        k_s, k_n = jr.split(key)
        b, d = x.shape
        s = self.objective.sigma.sample(k_s, (b, self.samples), x.dtype)
        return s, jr.normal(k_n, (b, self.samples, d), x.dtype)

    def squared_error(self, draw: tuple[Array, Array], x: Array, f: Callable[[Array], Array]) -> Array:
        """``sum_i (1/S) sum_k w(s_ik) ||D(x_i + s_ik n_ik; s_ik) - x_i||^2`` for rows x (B, D).

        Formed as ``|sqrt(w) c_out F(c_in x~) - sqrt(w) ((1 - c_skip) x - c_skip s n)|^2``: under "edm"
        ``sqrt(w) c_out = 1`` and every factor stays bounded as s -> 0 (no ``1 / s^2`` times ``s^2``).
        """
        s, n = draw
        b, k, d = n.shape
        c_skip, one_minus, c_out, c_in = (c[..., None] for c in self.objective.scalings(s))
        r = jnp.sqrt(self.objective.weight(s))[..., None]
        noisy = x[:, None, :] + s[..., None] * n
        out = f((c_in * noisy).reshape(b * k, d)).reshape(b, k, d)
        err = (r * c_out) * out - r * (one_minus * x[:, None, :] - c_skip * s[..., None] * n)
        return jnp.sum(jnp.square(err)) / k


jax.tree_util.register_dataclass(Denoising, data_fields=["objective"], meta_fields=["samples"])


@ft.lru_cache(maxsize=16)
def _apply_fn(activation):
    """F as one function object per activation (a ``Partial`` of it compiles once per shape)."""

    def apply(params, z):
        return models.reconstruct(params, z, activation)

    return apply


class DenoiserRun(NamedTuple):
    """What :func:`train` returns: the network at every record and what it generates.

    Fields:
      t: record times in epochs (T,), 0 first.
      params: the network's parameters at every record (each leaf with a leading axis T), in the
        data's basis.
      w: each direction's F value ``u_j = v_j^T W v_j`` over the records (T, D), directions in
        descending order of lam; NaN for a nonlinear F.
      variance: the generated variance of each direction from u alone (the prediction's integral
        applied to the trained u, :func:`~daedyn.diffusion._predict.generated_variance`) (T, D).
      variance_exact: ``diag(V^T C V)`` of the exact flow of the whole linear F, off-diagonal part
        included (:func:`~daedyn.diffusion._sample.linear_flow_variance`) (T, D); NaN for a
        nonlinear F.
      lam, basis: the eigenvalues of Sigma = X^T X (D,) and eigenvectors (columns, (D, D)).
      n: N. tau: N / alpha.
      objective: the :class:`Objective`. activation: F's activation (None: linear).
      sigma_min, sigma_max: the generation's range used for the variances.
    """

    t: Array
    params: dict
    w: Array
    variance: Array
    variance_exact: Array
    lam: Array
    basis: Array
    n: int
    tau: Array
    objective: Objective
    activation: Any
    sigma_min: float
    sigma_max: float

    def to_xarray(self, prediction=None):
        """The run as an ``xarray.Dataset`` over (``epoch``, ``direction``): ``w``, ``variance`` and
        ``variance_exact`` measured, ``lam`` the coordinate along ``direction``, the network's
        parameters over (``epoch``, its own axes); with ``prediction`` (:func:`predict` at the same
        records, its ``w`` (T, D)), the theory ``w_theory`` and ``variance_theory`` beside them.

        Raises:
          ImportError: xarray (the ``sweep`` extra) is not installed.
        """
        import numpy as np

        from daedyn._xarray import dataset

        series = ("epoch", "direction")
        fields = {k: (np.asarray(getattr(self, k)), series) for k in ("w", "variance", "variance_exact")}
        fields["lam"] = (np.asarray(self.lam), ("direction",))
        for k, v in self.params.items():
            v = np.asarray(v)
            fields[f"params_{k}"] = (v, ("epoch",) + tuple(f"{k}_dim_{i}" for i in range(1, v.ndim)))
        if prediction is not None:
            fields["w_theory"] = (np.asarray(prediction.w), series)
            if getattr(prediction, "variance", None) is not None:
                fields["variance_theory"] = (np.asarray(prediction.variance), series)
        attrs = {"n": int(self.n), "tau": float(np.ravel(np.asarray(self.tau))[0]),
                 "sigma_min": float(self.sigma_min), "sigma_max": float(self.sigma_max),
                 "activation": "linear" if self.activation is None else str(self.activation)}
        return dataset(fields, time=("epoch", np.asarray(self.t)), attrs=attrs,
                       what="DenoiserRun.to_xarray")

    def network(self, i: int = -1) -> jax.tree_util.Partial:
        """F at record i (rows in, rows out), for :func:`~daedyn.diffusion.sample`."""
        p = jax.tree.map(lambda a: a[i], self.params)
        return jax.tree_util.Partial(_apply_fn(self.activation), p)


@ft.lru_cache(maxsize=16)
def _records_fn(save_every: int, records: int, activation, batch_size, optimizer, samples: int):
    """One jitted run of ``records`` records: train_fn's loop for save_every epochs per record."""
    from daedyn import train as train_lib  # imported on use: ``import daedyn.diffusion`` stays light
    run = train_lib.train_fn(epochs=save_every, save_every=save_every, activation=activation,
                             noise=Denoising(Objective(), samples), path="data", batch_size=batch_size,
                             optimizer=optimizer, observables=(), remat=False)

    def whole(params, data, hyper, key):
        def body(p, k):
            p, _ = run(p, data, hyper, key, k * save_every)  # keys fold_in(key, epoch): one sequence
            return p, p

        _, later = jax.lax.scan(body, params, jnp.arange(records, dtype=jnp.int32))
        return jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), params, later)

    return jax.jit(whole)


def _end_to_end(params) -> Array:
    """W = W_L ... W_1 (D x D), depth 1 included."""
    ws = models.weights(params)
    w = ws[0]
    for f in ws[1:]:
        w = jnp.matmul(f, w, precision="highest")
    return w


def _init(d: int, widths: tuple[int, ...], key, scale, dtype):
    if not widths:  # depth 1: F = W_1 (D x D)
        return {"w1": jnp.asarray(scale, dtype) * jr.normal(key, (d, d), dtype)}
    return models.init_autoencoder(d, widths[0] if len(widths) == 1 else widths, key=key, init_scale=scale,
                                   dtype=dtype)


def train(x: ArrayLike, objective: Objective = Objective(), *, key: Array, alpha: ArrayLike, epochs: int,
          save_every: int | None = None, depth: int = 1, hidden: int | None = None,
          activation: models.Activation = None, samples: int = 1, batch_size: int | None = None,
          gamma: ArrayLike = 0.0, params: dict | None = None, init_scale: ArrayLike = 1e-4,
          optimizer: Any = None, spectrum: Any = None, dtype: Any = None,
          sigma_min: ArrayLike = 0.002, sigma_max: ArrayLike = 80.0) -> DenoiserRun:
    """Train a denoiser ``D = c_skip x~ + c_out F(c_in x~)`` across noise levels on rows x (module docstring).

    Args:
      x: training data (N, D) (a :class:`daedyn.data.Dataset`'s ``x`` too); its ``Sigma = X^T X`` is
        the theory's (centre the data first for a zero-mean generated distribution).
      objective: an :class:`Objective` with shared conditioning.
      key: a ``jax.random`` key (split into the initialisation's and the run's).
      alpha: learning rate > 0 (gradient descent unless ``optimizer``): ``tau = N / alpha``.
      epochs: epochs in all, a multiple of ``save_every``.
      save_every: epochs between records (default: ``epochs``).
      depth: number of factors L >= 1 of F (depth 1: one D x D matrix; a nonlinear F needs L >= 2).
      hidden: width of every hidden layer (default D).
      activation: None (linear) or a :func:`daedyn.models.get_activation` name / callable.
      samples: draws (s, n) per example and step, >= 1 (more: the sampled gradient's noise shrinks
        like ``1 / sqrt(N S)``).
      batch_size: minibatch size (None: full batch, one step per epoch).
      gamma: weight decay >= 0.
      params: the starting parameters (keys ``w1`` .. ``wL``); default N(0, init_scale^2) entries.
      init_scale: std of the default start, >= 0.
      optimizer: as :func:`daedyn.train.train_fn` (None: ``optax.sgd(alpha)``).
      spectrum: the :class:`daedyn.spectrum.Spectrum` of X^T X (computed when None).
      dtype: floating dtype (default: the data's; float32).
      sigma_min, sigma_max: the generation's range for the recorded variances.
    Returns:
      a :class:`DenoiserRun`.
    Raises:
      ValueError: for out-of-range values, independent conditioning, a nonlinear F at depth 1 or
        params of the wrong shapes.
    Example:
      >>> x = jr.normal(jr.key(0), (256, 3)) * jnp.array([[2.0, 1.0, 0.1]])
      >>> r = train(x, key=jr.key(1), alpha=0.05, epochs=40, save_every=20, samples=8)
      >>> r.w.shape, r.variance.shape
      ((3, 3), (3, 3))
    """
    if objective.conditioning != "shared":
        raise ValueError("train needs one network for all noise levels (conditioning='shared'); "
                         "independent levels are each the paper's DAE (daedyn.train at eps = N s_i^2)")
    depth = check_int("depth", depth, 1)
    samples = check_int("samples", samples, 1)
    epochs = check_int("epochs", epochs, 0)
    save_every = check_int("save_every", epochs if save_every is None else save_every, 1)
    if epochs % save_every:
        raise ValueError(f"epochs ({epochs}) must be a multiple of save_every ({save_every})")
    check_range("alpha", alpha, 0.0, lo_open=True)
    check_range("gamma", gamma, 0.0)
    check_range("init_scale", init_scale, 0.0)
    linear = models.is_linear(activation)
    if not linear and depth < 2:
        raise ValueError(f"a nonlinear F needs depth >= 2 (an activation between factors); got depth={depth}")
    x = getattr(x, "x", x)
    if np.ndim(x) != 2:
        raise ValueError(f"x must be a 2-D array (N, D); got shape {np.shape(x)}")
    n, d = np.shape(x)
    h = d if hidden is None else check_int("hidden", hidden, 1)
    widths = (h,) * (depth - 1)
    from daedyn import train as train_lib

    data = train_lib.prepare_data(x, spectrum=spectrum, linear=True, path="data", dtype=dtype)
    dt = data.x.dtype
    k_init, k_run = jr.split(key)
    if params is None:
        params = _init(d, widths, k_init, init_scale, dt)
    else:
        params = {k: jnp.asarray(v, dt) for k, v in params.items()}
        want = [(h if l < depth - 1 else d, d if l == 0 else h) for l in range(depth)]
        got = [tuple(np.shape(w)) for w in models.weights(params)]
        if got != want:
            raise ValueError(f"params must have the factors {want} (depth {depth}, hidden {h}); got {got}")
    hyper = train_lib.Hyper(jnp.asarray(alpha, dt), jnp.asarray(gamma, dt), jnp.zeros((), dt),
                            Denoising(jax.tree.map(lambda v: jnp.asarray(v, dt), objective), samples))
    records = epochs // save_every
    whole = _records_fn(save_every, records, activation, batch_size, optimizer, samples)
    snaps = whole(params, data, hyper, k_run)

    lo, hi = float(sigma_min), float(sigma_max)
    if linear:
        maps = jax.vmap(_end_to_end)(snaps)  # (T, D, D)
        u = jnp.einsum("ij,tik,kj->tj", data.eigvecs, maps, data.eigvecs, precision="highest")
        exact = linear_flow_variance(maps, data.eigvecs, objective, sigma_min=lo, sigma_max=hi)
        var = generated_variance(u, objective, sigma_min=lo, sigma_max=hi)
    else:
        u = exact = var = jnp.full((records + 1, d), jnp.nan, dt)
    t = jnp.arange(records + 1) * save_every
    return DenoiserRun(t=t, params=snaps, w=u, variance=var, variance_exact=exact, lam=data.eigvals,
                       basis=data.eigvecs, n=int(n), tau=jnp.asarray(n, dt) / jnp.asarray(alpha, dt),
                       objective=objective, activation=activation, sigma_min=lo, sigma_max=hi)
