"""Training real autoencoders with optax inside ``lax.scan``, observed per eigen-direction.

Networks are the one-hidden-layer autoencoders of :mod:`daedyn.models` (linear or nonlinear). The
objective (paper scaling, ``loss_scale="paper"``; CONTRACTS.md) for a batch of B inputs is

    L = 1/(2B) sum_i ||x_i - f(x_i + n_i)||^2 + (gamma / 2)(||W1||^2 + ||W2||^2),

with noise n_i sampled afresh every step, or for linear networks the marginalised (expected) loss of
Eq. (1) with the noise term ``(s^2 / 2) tr(W W^T)``. Full-batch gradient descent with rate alpha
then gives exactly the paper's dynamics with tau = N / alpha and eps = N s^2, Eqs. (2)-(3) and (6).
``loss_scale="mse"`` is the authors' nonlinear (Figure 6) setting: the mean of the squared error over
all B x D entries plus SGD weight decay (gamma / 2)||W||^2, so tau = N D / (2 alpha).

The marginalised linear loss needs the data only through Sigma = X^T X, so with the spectrum
Sigma = V diag(lam) V^T the run can take place in the eigenbasis (Wb1 = W1 V, Wb2 = V^T W2), where a
step costs O(D H^2) and never touches X (``path="eigen"``; exact for rotation-equivariant optimisers
such as the default gradient descent). ``path="sigma"`` uses Sigma in the input basis (O(D^2 H)) and
``path="data"`` the data matrix (O(N D H)), as the authors did.

Every ``record_every`` epochs (and at epoch 0) the run records, without leaving the device:

- ``mapping`` (D,): per-direction mapping lam_hat_j / lam_j with lam_hat_j = [V^T (sum_i xhat_i x_i^T) V]_jj
  (supplement section F). For a linear network this equals diag(V^T W V) exactly and is computed so
  (also for lam_j = 0); for a nonlinear one it is NaN where lam_j <= lam_0 * D * machine epsilon.
- ``singular_values`` (min(H, D),): singular values of W2 W1, descending ("strength", Figure 5;
  linear only).
- ``weight_norm``: ||W1||^2 + ||W2||^2.
- ``train_loss`` / ``heldout_loss``: clean reconstruction loss 1/(2 N) sum_i ||x_i - f(x_i)||^2 on the
  training / held-out set (paper scaling whatever ``loss_scale``; compare
  :func:`daedyn.theory.predicted_loss`).

:func:`train_fn` is the pure core: a function of (params, data, hyper, key) with the hyperparameters
alpha, gamma and s^2 traced, ``jax.checkpoint`` on each epoch and each record chunk, so it can be
jitted, vmapped and differentiated through thousands of epochs with bounded memory.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jax import Array
from jax.typing import ArrayLike

import daedyn  # noqa: F401  (the doctests use daedyn.noise)
from daedyn import _checkpoint, models
from daedyn import noise as noise_lib
from daedyn._checks import check_range, concrete

__all__ = [
    "Hyper", "TrainData", "TrainResult", "prepare_data", "train_fn", "train", "train_batch",
    "check_gd_stability", "OBSERVABLES", "initial_w0", "compare_with_theory",
]

OBSERVABLES = ("mapping", "singular_values", "weight_norm", "train_loss", "heldout_loss")
Params = dict[str, Array]


class Hyper(NamedTuple):
    """Traced hyperparameters of a run (scalars, or arrays with a batch axis under ``vmap``).

    Attributes:
      alpha: learning rate (> 0); passed to the optimiser factory (default ``optax.sgd``).
      gamma: weight decay (>= 0), the (gamma / 2)(||W1||^2 + ||W2||^2) term of Eq. (6).
      s2: per-component noise variance s^2 (>= 0); eps = N s^2. Scales sampled noise
        (reparameterised) or enters the marginalised loss directly.
    """

    alpha: ArrayLike
    gamma: ArrayLike = 0.0
    s2: ArrayLike = 0.0


class TrainData(NamedTuple):
    """Device arrays a run needs; build with :func:`prepare_data`. Unneeded fields are None.

    Attributes:
      x: training inputs (N, D) (data path and nonlinear observables).
      eigvals: eigenvalues lam of Sigma = X^T X, descending (D,).
      eigvecs: eigenvectors V, columns (D, D).
      n: number of training samples N (scalar array).
      xv: X V (N, D) for the nonlinear mapping estimate.
      sigma: Sigma = X^T X (D, D) for ``path="sigma"``.
      x_heldout: held-out inputs (M, D) (nonlinear held-out loss).
      sigma_heldout_eig: V^T X_h^T X_h V (D, D) (linear held-out loss).
      n_heldout: M (scalar array).
    """

    x: Array | None
    eigvals: Array
    eigvecs: Array
    n: Array
    xv: Array | None = None
    sigma: Array | None = None
    x_heldout: Array | None = None
    sigma_heldout_eig: Array | None = None
    n_heldout: Array | None = None


class TrainResult(NamedTuple):
    """Recorded observables of a run; arrays carry the batch axes of :func:`train_batch` first.

    Attributes:
      epochs: record times in epochs (T,), starting at 0 (``start_epoch`` when resuming).
      mapping: per-direction mapping (T, D), directions in descending order of lam.
      singular_values: singular values of W2 W1 (T, min(H, D)), descending; None for nonlinear nets.
      weight_norm: ||W1||^2 + ||W2||^2 (T,).
      train_loss: clean reconstruction loss on the training set, paper scaling (T,).
      heldout_loss: the same on ``x_heldout`` (T,); None without held-out data.
      params: final parameters, input basis ({"w1": (H, D), "w2": (D, H)}, + biases).
      init_params: the initial parameters.
      eigvals: lam (D,) of the training Sigma used for the mapping.
      n: N (int).
      tau: time constant of gradient descent, N / alpha ("paper") or N D / (2 alpha) ("mse").
      eps: noise level N s^2.
      gamma: weight decay.
    """

    epochs: Array
    mapping: Array | None
    singular_values: Array | None
    weight_norm: Array | None
    train_loss: Array | None
    heldout_loss: Array | None
    params: Params
    init_params: Params
    eigvals: Array
    n: int
    tau: Array
    eps: Array
    gamma: Array


# --------------------------------------------------------------------------------------------------
# Data preparation
# --------------------------------------------------------------------------------------------------

def _floating_dtype(x, dtype=None):
    if dtype is not None:
        return jnp.dtype(dtype)
    dt = jnp.result_type(x)
    return dt if jnp.issubdtype(dt, jnp.floating) else jnp.result_type(float)


def _eig(x: Array, precision) -> tuple[Array, Array]:
    """Descending eigendecomposition of X^T X (uses daedyn.spectrum when available)."""
    try:
        from daedyn import spectrum as spectrum_lib
        spec = spectrum_lib.compute_spectrum(x)
        return jnp.asarray(spec.eigvals, x.dtype), jnp.asarray(spec.eigvecs, x.dtype)
    except (ImportError, AttributeError):
        sigma = jnp.matmul(x.T, x, precision=precision)
        lam, v = jnp.linalg.eigh(sigma)
        return lam[::-1], v[:, ::-1]


def prepare_data(x: ArrayLike, *, spectrum: Any = None, x_heldout: ArrayLike | None = None,
                 linear: bool = True, path: str = "eigen", dtype: Any = None,
                 precision: Any = "highest") -> TrainData:
    """Move a dataset to the device with what a run needs (spectrum, rotated held-out moment).

    Args:
      x: training inputs (N, D), rows are samples.
      spectrum: a ``daedyn.spectrum.Spectrum`` of X^T X (fields eigvals, eigvecs; descending), or
        None to compute it here.
      x_heldout: optional held-out inputs (M, D).
      linear: whether the network is linear (decides which derived arrays are built).
      path: "eigen", "sigma" or "data" (see :func:`train_fn`).
      dtype: floating dtype (default: that of ``x``).
      precision: matmul precision for the derived moments (default "highest").
    Returns:
      :class:`TrainData`.
    Raises:
      ValueError: for non-2-D data, a D mismatch, or a spectrum of the wrong size.
    """
    x_np = concrete(x)
    if np.ndim(x) != 2:
        raise ValueError(f"x must be a 2-D array (N, D); got shape {np.shape(x)}")
    if x_np is not None:
        check_range("x", x_np)
    dtype = _floating_dtype(x, dtype)
    x = jnp.asarray(x, dtype)
    n, d = x.shape
    if spectrum is None:
        lam, v = _eig(x, precision)
    else:
        lam = jnp.asarray(spectrum.eigvals, dtype)
        v = jnp.asarray(spectrum.eigvecs, dtype)
        if lam.shape != (d,) or v.shape != (d, d):
            raise ValueError(f"spectrum must have eigvals ({d},) and eigvecs ({d}, {d}) for D = {d}; "
                             f"got {lam.shape} and {v.shape}")
    xv = None if linear else jnp.matmul(x, v, precision=precision)
    sigma = jnp.matmul(x.T, x, precision=precision) if path == "sigma" else None
    xh = sh = nh = None
    if x_heldout is not None:
        if np.ndim(x_heldout) != 2 or np.shape(x_heldout)[1] != d:
            raise ValueError(f"x_heldout must have shape (M, {d}); got {np.shape(x_heldout)}")
        check_range("x_heldout", x_heldout)
        xh = jnp.asarray(x_heldout, dtype)
        nh = jnp.asarray(xh.shape[0], dtype)
        if linear:
            xhv = jnp.matmul(xh, v, precision=precision)
            sh = jnp.matmul(xhv.T, xhv, precision=precision)
            xh = None
    return TrainData(x=x, eigvals=lam, eigvecs=v, n=jnp.asarray(n, dtype), xv=xv, sigma=sigma,
                     x_heldout=xh, sigma_heldout_eig=sh, n_heldout=nh)


# --------------------------------------------------------------------------------------------------
# Losses and observables
# --------------------------------------------------------------------------------------------------

def _weight_decay(params: Params) -> Array:
    return 0.5 * (jnp.sum(jnp.square(params["w1"])) + jnp.sum(jnp.square(params["w2"])))


def _quadratic_loss_terms(w1, w2, sigma, trace_sigma, mm):
    """tr(Sigma) - 2 tr(W Sigma) + tr(W Sigma W^T) for W = w2 w1 in O(D^2 H) (or O(D H^2) if diagonal).

    ``sigma`` is a full (D, D) matrix or a vector (the diagonal of Sigma in its eigenbasis).
    """
    a = w1 * sigma[None, :] if sigma.ndim == 1 else mm(w1, sigma)  # w1 Sigma, (H, D)
    cross = jnp.sum(w2.T * a)  # tr(w2 w1 Sigma)
    quad = jnp.sum(mm(w2.T, w2) * mm(a, w1.T))  # tr((w2^T w2)(w1 Sigma w1^T))
    return trace_sigma - 2 * cross + quad


def _frob2_map(w1, w2, mm):
    """||w2 w1||_F^2 = tr(W W^T) in O(D H^2)."""
    return jnp.sum(mm(w2.T, w2) * mm(w1, w1.T))


def _svdvals_product(w2: Array, w1: Array, mm) -> Array:
    """Singular values of w2 w1 (D x H times H x D), descending, min(H, D) of them, in O(D H^2)."""
    h, d = w1.shape
    if h >= d:
        return jnp.linalg.svd(mm(w2, w1), compute_uv=False)
    _, r2 = jnp.linalg.qr(w2)
    _, r1 = jnp.linalg.qr(w1.T)
    return jnp.linalg.svd(mm(r2, r1.T), compute_uv=False)


@dataclasses.dataclass(frozen=True)
class _Config:
    epochs: int
    record_every: int
    activation: Any
    linear: bool
    noise: Any  # (kind, unit_sampler) of the noise model, or None
    marginalised: bool
    loss_scale: str
    path: str
    batch_size: int | None
    optimizer: Any
    precision: Any
    observables: tuple[str, ...]
    remat: bool


def _mm(precision):
    return lambda a, b: jnp.matmul(a, b, precision=precision)


def _to_eigen(params: Params, v: Array, mm) -> Params:
    out = dict(params)
    out["w1"] = mm(params["w1"], v)
    out["w2"] = mm(v.T, params["w2"])
    return out


def _from_eigen(params: Params, v: Array, mm) -> Params:
    out = dict(params)
    out["w1"] = mm(params["w1"], v.T)
    out["w2"] = mm(v, params["w2"])
    return out


def _loss_coef(cfg: _Config, count, d, dtype):
    """c in L = c * sum of squared errors: 1/(2B) ("paper") or 1/(B D) ("mse")."""
    count = jnp.asarray(count, dtype)
    return 1.0 / (2.0 * count) if cfg.loss_scale == "paper" else 1.0 / (count * d)


def _objective(cfg: _Config, params: Params, data: TrainData, hyper: Hyper, key, batch_idx,
               unit_noise=None):
    """Training objective of one step (see module docstring).

    Sampled noise is ``sqrt(s2) * unit`` with ``unit`` drawn from ``key`` for the whole batch, or
    given as ``unit_noise`` (the rows of the epoch's (N, D) draw picked by ``batch_idx``).
    """
    mm = _mm(cfg.precision)
    dtype = params["w1"].dtype
    gamma = jnp.asarray(hyper.gamma, dtype)
    s2 = jnp.asarray(hyper.s2, dtype)
    d = params["w1"].shape[1]
    if cfg.path in ("eigen", "sigma"):
        lam = data.eigvals
        sigma = lam if cfg.path == "eigen" else data.sigma
        c = _loss_coef(cfg, data.n, d, dtype)
        rec = _quadratic_loss_terms(params["w1"], params["w2"], sigma, jnp.sum(lam), mm)
        if cfg.marginalised:
            rec = rec + data.n * s2 * _frob2_map(params["w1"], params["w2"], mm)
        return c * rec + gamma * _weight_decay(params)
    xb = data.x if batch_idx is None else data.x[batch_idx]
    count = xb.shape[0]
    c = _loss_coef(cfg, count, d, dtype)
    inputs = xb
    if cfg.noise is not None and not cfg.marginalised:
        nz = noise_lib.Noise(cfg.noise[0], s2, cfg.noise[1])
        inputs = xb + (nz.sample(key, xb.shape, dtype) if unit_noise is None
                       else jnp.sqrt(s2) * unit_noise)
    err = xb - models.reconstruct(params, inputs, cfg.activation, precision=cfg.precision)
    loss = c * jnp.sum(jnp.square(err))
    if cfg.marginalised:
        loss = loss + c * count * s2 * _frob2_map(params["w1"], params["w2"], mm)
    return loss + gamma * _weight_decay(params)


def _observe(cfg: _Config, params: Params, data: TrainData) -> dict[str, Array]:
    """Observables of the current parameters (in the run's basis)."""
    mm = _mm(cfg.precision)
    obs = {}
    lam = data.eigvals
    dtype = params["w1"].dtype
    if cfg.linear:
        pe = params if cfg.path == "eigen" else _to_eigen(params, data.eigvecs, mm)
        wb1, wb2 = pe["w1"], pe["w2"]
        if "mapping" in cfg.observables:
            obs["mapping"] = jnp.sum(wb2 * wb1.T, axis=1)  # diag(V^T W V)
        if "singular_values" in cfg.observables:
            obs["singular_values"] = _svdvals_product(wb2, wb1, mm)
        if "train_loss" in cfg.observables:
            obs["train_loss"] = _quadratic_loss_terms(wb1, wb2, lam, jnp.sum(lam), mm) / (2 * data.n)
        if "heldout_loss" in cfg.observables and data.sigma_heldout_eig is not None:
            sh = data.sigma_heldout_eig
            obs["heldout_loss"] = (_quadratic_loss_terms(wb1, wb2, sh, jnp.trace(sh), mm)
                                   / (2 * data.n_heldout))
    else:
        if "mapping" in cfg.observables or "train_loss" in cfg.observables:
            xhat = models.reconstruct(params, data.x, cfg.activation, precision=cfg.precision)
            if "mapping" in cfg.observables:
                lam_hat = jnp.sum(mm(xhat, data.eigvecs) * data.xv, axis=0)
                ok = lam > lam[0] * lam.shape[0] * jnp.finfo(dtype).eps
                safe = jnp.where(ok, lam, 1.0)  # double where: the masked branch stays finite
                obs["mapping"] = jnp.where(ok, lam_hat / safe, jnp.nan)
            if "train_loss" in cfg.observables:
                obs["train_loss"] = jnp.sum(jnp.square(data.x - xhat)) / (2 * data.n)
        if "heldout_loss" in cfg.observables and data.x_heldout is not None:
            xh = data.x_heldout
            xhat_h = models.reconstruct(params, xh, cfg.activation, precision=cfg.precision)
            obs["heldout_loss"] = jnp.sum(jnp.square(xh - xhat_h)) / (2 * data.n_heldout)
    if "weight_norm" in cfg.observables:
        obs["weight_norm"] = 2 * _weight_decay(params)
    return obs


def _make_optimizer(cfg: _Config, alpha):
    opt = cfg.optimizer
    if opt is None:
        return optax.sgd(alpha)
    if isinstance(opt, optax.GradientTransformation):
        return opt
    return opt(alpha)


_SHUFFLE = 0x5EED  # fold_in constant of the minibatch shuffling key


def _epoch_fn(cfg: _Config):
    """One epoch: a full-batch step, or a scan over shuffled minibatches."""

    def step(params, opt_state, data, hyper, key, batch_idx, opt, unit_noise=None):
        grads = jax.grad(_objective, argnums=1)(cfg, params, data, hyper, key, batch_idx, unit_noise)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    def epoch(carry, data, hyper, key):
        params, opt_state, ep = carry
        opt = _make_optimizer(cfg, hyper.alpha)
        k = jr.fold_in(key, ep)
        if cfg.batch_size is None or cfg.path != "data":
            params, opt_state = step(params, opt_state, data, hyper, k, None, opt)
        else:
            # The epoch's noise is one (N, D) draw from the same key as a full-batch epoch, so the
            # noise added to sample i does not depend on the batch size (batch_size = N is the
            # full-batch step up to summation order). The shuffle uses a key derived from it.
            n = data.x.shape[0]
            nb = n // cfg.batch_size
            perm = jr.permutation(jr.fold_in(k, _SHUFFLE), n)[: nb * cfg.batch_size]
            perm = perm.reshape(nb, cfg.batch_size)
            unit = None
            if cfg.noise is not None and not cfg.marginalised:
                nz = noise_lib.Noise(cfg.noise[0], 1.0, cfg.noise[1])
                unit = nz.unit_sample(k, data.x.shape, params["w1"].dtype)

            def inner(c, idx):
                p, s = c
                u = None if unit is None else unit[idx]
                return step(p, s, data, hyper, k, idx, opt, u), None

            (params, opt_state), _ = jax.lax.scan(inner, (params, opt_state), perm)
        return params, opt_state, ep + 1

    return jax.checkpoint(epoch) if cfg.remat else epoch


def _run_records_fn(cfg: _Config, n_records: int):
    """Pure function advancing (params, opt_state, epoch) by n_records * record_every epochs."""
    epoch = _epoch_fn(cfg)

    def chunk(carry, data, hyper, key):
        def body(c, _):
            return epoch(c, data, hyper, key), None

        carry, _ = jax.lax.scan(body, carry, None, length=cfg.record_every)
        return carry

    if cfg.remat:
        chunk = jax.checkpoint(chunk)

    def run(carry, data, hyper, key):
        def outer(c, _):
            c = chunk(c, data, hyper, key)
            return c, _observe(cfg, c[0], data)

        return jax.lax.scan(outer, carry, None, length=n_records)

    return run


def _resolve_path(path, linear, noise, marginalised, batch_size, optimizer, bias):
    if path not in ("auto", "eigen", "sigma", "data"):
        raise ValueError(f"path must be 'auto', 'eigen', 'sigma' or 'data'; got {path!r}")
    sigma_ok = linear and (noise is None or marginalised) and batch_size is None and not bias
    if path == "auto":
        if not sigma_ok:
            return "data"
        return "eigen" if optimizer is None else "sigma"
    if path != "data" and not sigma_ok:
        raise ValueError(f"path={path!r} needs a linear network without biases trained full-batch "
                         "without sampled noise (noise=None or marginalised=True); use path='data'")
    return path


def _config(*, epochs, record_every, activation, noise, marginalised, loss_scale, path, batch_size,
            optimizer, precision, observables, remat, bias=False) -> _Config:
    check_range("epochs", epochs, 0)
    check_range("record_every", record_every, 1)
    if int(epochs) % int(record_every):
        raise ValueError(f"epochs ({epochs}) must be a multiple of record_every ({record_every})")
    if loss_scale not in ("paper", "mse"):
        raise ValueError(f"loss_scale must be 'paper' or 'mse'; got {loss_scale!r}")
    models.get_activation(activation)  # validates the name
    linear = models.is_linear(activation)
    noise = noise_lib.as_noise(noise)
    if marginalised and not linear:
        raise ValueError("marginalised=True needs a linear network (activation=None): the expected "
                         "loss over noise has a closed form only for linear maps")
    if batch_size is not None:
        check_range("batch_size", batch_size, 1)
        batch_size = int(batch_size)
    if optimizer is not None and not (isinstance(optimizer, optax.GradientTransformation)
                                      or callable(optimizer)):
        raise ValueError("optimizer must be an optax.GradientTransformation or a callable "
                         "learning_rate -> GradientTransformation")
    path = _resolve_path(path, linear, noise, marginalised, batch_size, optimizer, bias)
    if observables is None:
        observables = OBSERVABLES
    observables = tuple(observables)
    bad = set(observables) - set(OBSERVABLES)
    if bad:
        raise ValueError(f"observables must be among {OBSERVABLES}; got {sorted(bad)}")
    if not linear:
        observables = tuple(o for o in observables if o != "singular_values")
    # The marginalised loss needs only the variance (a traced hyperparameter): runs with any noise
    # kind share one compiled function.
    spec = None if (noise is None or marginalised) else (noise.kind, noise._unit_sampler)
    return _Config(epochs=int(epochs), record_every=int(record_every), activation=activation,
                   linear=linear, noise=spec, marginalised=bool(marginalised), loss_scale=loss_scale,
                   path=path, batch_size=batch_size, optimizer=optimizer, precision=precision,
                   observables=observables, remat=bool(remat))


def train_fn(*, epochs: int, record_every: int | None = None, activation: models.Activation = None,
             noise: noise_lib.Noise | str | None = None, marginalised: bool = False,
             loss_scale: Literal["paper", "mse"] = "paper",
             path: Literal["auto", "eigen", "sigma", "data"] = "auto", batch_size: int | None = None,
             optimizer: optax.GradientTransformation | Callable[[Array], Any] | None = None,
             precision: Any = None, observables: Sequence[str] | None = None,
             remat: bool = True, bias: bool = False) -> Callable[..., tuple[Params, dict[str, Array]]]:
    """Pure, differentiable training core: returns ``run(params, data, hyper, key)``.

    ``run`` trains from ``params`` (input basis) for ``epochs`` epochs and returns
    ``(final_params, records)``, where ``records[name]`` has a leading axis of
    ``epochs // record_every + 1`` records (epoch 0 first). Everything a user may tune is an
    argument of ``run`` and is traced: ``hyper = Hyper(alpha, gamma, s2)``; the data come in as a
    :class:`TrainData` pytree (nothing large is closed over). With the same ``key`` every call draws
    the same noise (keys are ``fold_in(key, epoch)``), so ``jax.grad(lambda h: loss(run(p, d, h, k)))``
    is a pathwise (reparameterised) gradient. ``jax.checkpoint`` wraps each epoch and each chunk of
    ``record_every`` epochs, so reverse-mode memory grows with the number of records, not epochs.

    Args:
      epochs: number of epochs (>= 0).
      record_every: epochs between records (default: ``epochs``, i.e. first and last only); must
        divide ``epochs``.
      activation: None/"linear" or a nonlinearity (see :func:`daedyn.models.get_activation`).
      noise: None, "gaussian", "laplace" or a :class:`daedyn.noise.Noise` (only its kind is used;
        the variance is ``hyper.s2``).
      marginalised: train a linear network on the expected loss over the noise (Eq. 1) instead of
        sampling it; the variance is ``hyper.s2`` (no ``noise`` needed).
      loss_scale: "paper" (1/(2B) sum of squared errors; tau = N / alpha) or "mse" (mean over B x D
        entries, Figure 6; tau = N D / (2 alpha)).
      path: "auto" (eigenbasis when possible with the default optimiser, else Sigma, else data),
        "eigen", "sigma" or "data" (see module docstring).
      batch_size: minibatch size for ``path="data"`` (None: full batch, one step per epoch).
      optimizer: None (``optax.sgd(alpha)``, the paper's gradient descent), a callable
        ``alpha -> optax.GradientTransformation`` (alpha stays traced), or a fixed
        ``GradientTransformation`` (then alpha is unused). Non-equivariant optimisers (Adam) need
        ``path="sigma"`` or ``"data"``; "auto" picks "sigma" for any user optimiser.
      precision: matmul precision for every product in the loop.
      observables: names from :data:`OBSERVABLES` to record (default all that apply).
      remat: wrap epochs and record chunks in ``jax.checkpoint``.
      bias: the parameters will carry biases (forces ``path="data"``).
    Returns:
      ``run(params, data, hyper, key) -> (params, records)``.
    Raises:
      ValueError: for inconsistent options (checked here, before tracing).
    Example:
      >>> x = jr.uniform(jr.key(0), (32, 4))
      >>> data = prepare_data(x)
      >>> run = jax.jit(train_fn(epochs=50, record_every=25, marginalised=True))
      >>> p0 = models.init_autoencoder(4, 2, key=jr.key(1), scale=1e-2)
      >>> p, rec = run(p0, data, Hyper(alpha=0.1, gamma=0.0, s2=0.1), jr.key(2))
      >>> rec["mapping"].shape, rec["train_loss"].shape
      ((3, 4), (3,))
    """
    record_every = epochs if record_every is None else record_every
    record_every = max(int(record_every), 1)
    cfg = _config(epochs=epochs, record_every=record_every, activation=activation, noise=noise,
                  marginalised=marginalised, loss_scale=loss_scale, path=path, batch_size=batch_size,
                  optimizer=optimizer, precision=precision, observables=observables, remat=remat,
                  bias=bias)
    return _full_run_fn(cfg)


def _full_run_fn(cfg: _Config, n_records: int | None = None, start: bool = True):
    n_records = cfg.epochs // cfg.record_every if n_records is None else n_records
    records_fn = _run_records_fn(cfg, n_records)
    mm = _mm(cfg.precision)

    def run(params, data, hyper, key, start_epoch=0):
        p = _to_eigen(params, data.eigvecs, mm) if cfg.path == "eigen" else params
        opt_state = _make_optimizer(cfg, hyper.alpha).init(p)
        carry = (p, opt_state, jnp.asarray(start_epoch, jnp.int32))
        first = _observe(cfg, p, data)
        carry, recs = records_fn(carry, data, hyper, key)
        recs = {k: jnp.concatenate([first[k][None], recs[k]]) for k in first}
        out = carry[0]
        out = _from_eigen(out, data.eigvecs, mm) if cfg.path == "eigen" else out
        return out, recs

    return run


# --------------------------------------------------------------------------------------------------
# Stability
# --------------------------------------------------------------------------------------------------

def check_gd_stability(lam_max: ArrayLike, alpha: ArrayLike, n: ArrayLike, *,
                       loss_scale: str = "paper", d: int | None = None, stacklevel: int = 2) -> bool:
    """Warn (RuntimeWarning) when gradient descent on a linear AE is unstable at its fixed point.

    At the balanced fixed point the largest Hessian eigenvalue of the per-epoch loss is
    2 lam_max / N (DESIGN.md; supplement D), so GD needs alpha lam_max / N < 1 ("paper" scaling;
    with "mse" the effective rate is 2 alpha / D).

    Returns:
      True if stable (or not checkable because traced), False after warning.
    Example:
      >>> check_gd_stability(100.0, 0.01, 1000)
      True
    """
    lam_c, a_c, n_c = concrete(lam_max), concrete(alpha), concrete(n)
    if lam_c is None or a_c is None or n_c is None:
        return True
    rate = np.asarray(a_c, np.float64) * (1.0 if loss_scale == "paper" else 2.0 / float(d))
    ratio = rate * float(np.max(lam_c)) / float(n_c)
    if np.any(ratio >= 1):
        worst = float(np.max(ratio))
        warnings.warn(
            f"gradient descent is unstable for the top direction: alpha * lam / N = {worst:.3g} >= 1 "
            f"(lam = {float(np.max(lam_c)):.6g}, alpha = {float(np.max(a_c)):.6g}, N = {int(n_c)}, "
            f"loss_scale={loss_scale!r}); the top mapping will oscillate or overshoot its fixed "
            "point. Lower alpha below N / lam.", RuntimeWarning, stacklevel=stacklevel)
        return False
    return True


# --------------------------------------------------------------------------------------------------
# Public drivers
# --------------------------------------------------------------------------------------------------

def _is_key_batch(key) -> tuple[int, ...] | None:
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key.shape
    return key.shape[:-1]


def _drive(x, *, hidden, key, epochs, alpha, activation, noise, marginalised, gamma, spectrum,
           x_heldout, record_every, optimizer, init_scale, batch_size, precision, loss_scale, bias,
           path, params, observables, progress, chunk_records, start_epoch, dtype, batched,
           checkpoint=None):
    check_range("hidden", hidden, 1)
    if int(hidden) != hidden:
        raise ValueError(f"hidden must be an integer >= 1; got {hidden!r}")
    check_range("alpha", alpha, 0.0, lo_open=True)
    check_range("gamma", gamma, 0.0)
    check_range("init_scale", init_scale, 0.0)
    check_range("start_epoch", start_epoch, 0)
    noise = noise_lib.as_noise(noise)
    s2 = 0.0 if noise is None else noise.variance
    check_range("noise variance", s2, 0.0)
    if marginalised and noise is None:
        raise ValueError("marginalised=True needs a noise model (e.g. daedyn.noise.gaussian(sigma2)) "
                         "whose variance enters the expected loss")
    cfg = _config(epochs=epochs, record_every=record_every, activation=activation, noise=noise,
                  marginalised=marginalised, loss_scale=loss_scale, path=path, batch_size=batch_size,
                  optimizer=optimizer, precision=precision, observables=observables, remat=False,
                  bias=bias)
    if cfg.batch_size is not None and cfg.batch_size > np.shape(x)[0]:
        raise ValueError(f"batch_size must be <= N = {np.shape(x)[0]}; got {batch_size}")
    data = prepare_data(x, spectrum=spectrum, x_heldout=x_heldout, linear=cfg.linear, path=cfg.path,
                        dtype=dtype)
    dt = data.x.dtype
    n, d = data.x.shape
    if cfg.linear and cfg.optimizer is None:
        check_gd_stability(data.eigvals[0], alpha, n, loss_scale=loss_scale, d=d, stacklevel=4)

    key_shape = _is_key_batch(key)
    if batched:
        shape = tuple(np.broadcast_shapes(np.shape(alpha), np.shape(gamma), np.shape(s2), key_shape))
        size = int(np.prod(shape)) if shape else 1
        if key_shape == ():
            keys = jr.split(key, size)
        elif tuple(key_shape) == shape:
            keys = key.reshape(size, *key.shape[len(shape):])
        else:
            raise ValueError(f"a batch of keys must have the batch shape {shape} of alpha/gamma/noise; "
                             f"got {tuple(key_shape)}")
    elif key_shape != ():
        raise ValueError(f"key must be a single PRNG key for train(); got a batch of shape {key_shape} "
                         "(use train_batch)")
    hyper = Hyper(jnp.asarray(alpha, dt), jnp.asarray(gamma, dt), jnp.asarray(s2, dt))
    if params is not None:
        params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, dt), params)
        if params["w1"].shape[-2:] != (int(hidden), d) or params["w2"].shape[-2:] != (d, int(hidden)):
            raise ValueError(f"params must have w1 ({hidden}, {d}) and w2 ({d}, {hidden}); got "
                             f"{params['w1'].shape} and {params['w2'].shape}")
    n_total = cfg.epochs // cfg.record_every
    if chunk_records:
        chunk = max(1, min(int(chunk_records), n_total))
    else:  # checkpoints are written between chunks: about ten per run by default
        chunk = max(1, -(-n_total // 10)) if checkpoint is not None else n_total
    fns = _driver_fns(cfg, batched, int(hidden), bool(bias))
    scale = jnp.asarray(init_scale, dt)
    start = jnp.asarray(start_epoch, jnp.int32)
    if batched:
        flat = lambda a: jnp.broadcast_to(a, shape).reshape(size)
        hyper_run = Hyper(flat(hyper.alpha), flat(hyper.gamma), flat(hyper.s2))
        run_key = keys
    else:
        hyper_run = hyper
        run_key = key

    axis = 1 if batched else 0
    expand = lambda first: {k: np.expand_dims(np.asarray(v), axis) for k, v in first.items()}
    if chunk == n_total and n_total > 0 and checkpoint is None:  # one call: begin, records, finish
        first, recs, final, p0 = fns["whole"](n_total)(run_key, params, scale, data, hyper_run, start)
        parts = [expand(first), {k: np.asarray(v) for k, v in recs.items()}]
        if progress is not None:
            progress(int(start_epoch) + cfg.epochs, int(start_epoch) + cfg.epochs)
    else:
        carry, first, p0, krun = fns["begin"](run_key, params, scale, data, hyper_run, start)
        parts = [expand(first)]
        done = 0
        if checkpoint is not None:
            fp = _run_fingerprint(cfg, hidden=hidden, bias=bias, init_scale=init_scale,
                                  start_epoch=start_epoch, batched=batched, data=data,
                                  hyper=hyper_run, key=run_key, params=params)
            leaves, treedef = jax.tree_util.tree_flatten(carry)
            saved = _checkpoint.load(checkpoint, fp, len(leaves))
            if saved is not None:  # resume: the state after `done` records, and those records
                carry = jax.tree_util.tree_unflatten(
                    treedef, [jnp.asarray(v, dtype=leaf.dtype) for v, leaf in zip(saved.state_leaves,
                                                                                  leaves)])
                parts, done = [saved.records], saved.done
        while done < n_total:
            m = min(chunk, n_total - done)
            carry, recs = fns["advance"](m)(carry, data, hyper_run, krun)
            parts.append({k: np.asarray(v) for k, v in recs.items()})  # waits for the chunk
            done += m
            if checkpoint is not None:
                parts = [{k: np.concatenate([p[k] for p in parts], axis=axis) for k in parts[0]}]
                _checkpoint.save(checkpoint, carry, parts[0], done, fp)
            if progress is not None:
                progress(int(start_epoch) + done * cfg.record_every, int(start_epoch) + cfg.epochs)
        final = fns["finish"](carry, data)
    recs = {k: jnp.asarray(np.concatenate([p[k] for p in parts], axis=axis)) for k in parts[0]}
    epochs_arr = jnp.asarray(np.arange(n_total + 1) * cfg.record_every + int(start_epoch))
    rate_factor = 1.0 if loss_scale == "paper" else 2.0 / d
    np_dt = np.dtype(dt)
    tau = jnp.asarray(np.asarray(n / (np.asarray(alpha, np.float64) * rate_factor), np_dt))
    eps = jnp.asarray(np.asarray(n * np.asarray(s2, np.float64), np_dt))
    gamma_out = jnp.asarray(np.asarray(gamma, np_dt))
    if batched:
        unflat = lambda a: a.reshape(*shape, *a.shape[1:])
        recs = {k: unflat(v) for k, v in recs.items()}
        final = jax.tree_util.tree_map(unflat, final)
        p0 = jax.tree_util.tree_map(unflat, p0)
        tau, eps, gamma_out = (jnp.asarray(np.broadcast_to(np.asarray(a), shape))
                               for a in (tau, eps, gamma_out))
    return TrainResult(
        epochs=epochs_arr, mapping=recs.get("mapping"), singular_values=recs.get("singular_values"),
        weight_norm=recs.get("weight_norm"), train_loss=recs.get("train_loss"),
        heldout_loss=recs.get("heldout_loss"), params=final, init_params=p0, eigvals=data.eigvals,
        n=int(n), tau=tau, eps=eps, gamma=gamma_out)


def _run_fingerprint(cfg: _Config, *, hidden, bias, init_scale, start_epoch, batched, data, hyper,
                     key, params) -> str:
    """What makes two driver runs the same run (for resuming from a checkpoint)."""
    name = lambda f: f if f is None or isinstance(f, str) else getattr(f, "__qualname__", repr(f))
    settings = dict(
        epochs=cfg.epochs, record_every=cfg.record_every, activation=name(cfg.activation),
        noise=None if cfg.noise is None else cfg.noise[0], marginalised=cfg.marginalised,
        loss_scale=cfg.loss_scale, path=cfg.path, batch_size=cfg.batch_size,
        optimizer=None if cfg.optimizer is None else name(type(cfg.optimizer)),
        precision=str(cfg.precision), observables=list(cfg.observables), hidden=int(hidden),
        bias=bool(bias), init_scale=float(init_scale), start_epoch=int(start_epoch),
        batched=bool(batched))
    arrays = dict(x=data.x, eigvals=data.eigvals, x_heldout=data.x_heldout,
                  sigma_heldout_eig=data.sigma_heldout_eig, alpha=hyper.alpha,
                  gamma=hyper.gamma, s2=hyper.s2, key=key)
    if params is not None:
        arrays.update({f"params_{k}": v for k, v in params.items()})
    return _checkpoint.fingerprint(settings, arrays)


@functools.lru_cache(maxsize=32)
def _driver_fns(cfg: _Config, batched: bool, hidden: int, bias: bool) -> dict[str, Any]:
    """Jitted begin/advance/finish functions of a driver run, cached per static configuration."""
    mm = _mm(cfg.precision)

    def begin(key, p_given, scale, dat, hp, start_epoch):
        k_init, k_run = jr.split(key)
        if p_given is None:
            p0 = models.init_autoencoder(dat.eigvals.shape[0], hidden, key=k_init, scale=scale,
                                         bias=bias, dtype=dat.eigvals.dtype)
        else:
            p0 = p_given
        p = _to_eigen(p0, dat.eigvecs, mm) if cfg.path == "eigen" else p0
        carry = (p, _make_optimizer(cfg, hp.alpha).init(p), start_epoch)
        return carry, _observe(cfg, p, dat), p0, k_run

    def finish(c, dat):
        return _from_eigen(c[0], dat.eigvecs, mm) if cfg.path == "eigen" else c[0]

    def advance_fn(m):
        f = _run_records_fn(cfg, m)
        return jax.vmap(f, in_axes=(0, None, 0, 0)) if batched else f

    if batched:
        begin = jax.vmap(begin, in_axes=(0, None, None, None, 0, None))
        finish = jax.vmap(finish, in_axes=(0, None))
    advances, wholes = {}, {}

    def advance(m):
        if m not in advances:
            advances[m] = jax.jit(advance_fn(m))
        return advances[m]

    def whole(m):
        """begin, m records and finish in one compiled function (one compilation per run shape)."""
        if m not in wholes:
            adv = advance_fn(m)

            def run(key, p_given, scale, dat, hp, start_epoch):
                carry, first, p0, k_run = begin(key, p_given, scale, dat, hp, start_epoch)
                carry, recs = adv(carry, dat, hp, k_run)
                return first, recs, finish(carry, dat), p0

            wholes[m] = jax.jit(run)
        return wholes[m]

    return {"begin": jax.jit(begin), "finish": jax.jit(finish), "advance": advance, "whole": whole}


def train(x: ArrayLike, *, hidden: int, key: Array, epochs: int, alpha: float,
          activation: models.Activation = None, noise: noise_lib.Noise | None = None,
          marginalised: bool = False, gamma: float = 0.0, spectrum: Any = None,
          x_heldout: ArrayLike | None = None, record_every: int = 100,
          optimizer: optax.GradientTransformation | Callable[[Array], Any] | None = None,
          init_scale: float = 1e-4, batch_size: int | None = None, precision: Any = None,
          loss_scale: Literal["paper", "mse"] = "paper", bias: bool = False,
          path: Literal["auto", "eigen", "sigma", "data"] = "auto", params: Params | None = None,
          observables: Sequence[str] | None = None,
          progress: Callable[[int, int], None] | None = None, chunk_records: int | None = None,
          start_epoch: int = 0, dtype: Any = None,
          checkpoint: str | os.PathLike | None = None) -> TrainResult:
    """Train one autoencoder on ``x`` and record its per-direction dynamics (see module docstring).

    Args:
      x: training inputs (N, D), rows are samples (the paper: pixels in [0, 1], not centred).
      hidden: hidden units H.
      key: PRNG key (split into an initialisation key and a noise/shuffling key).
      epochs: number of epochs (a multiple of ``record_every``).
      alpha: learning rate (> 0); with the default optimiser tau = N / alpha.
      activation: None/"linear", a ``jax.nn`` name ("relu", "tanh", ...) or a callable.
      noise: None, or a :class:`daedyn.noise.Noise` (e.g. ``gaussian(0.5)``, ``laplace(b)``), sampled
        every step unless ``marginalised``.
      marginalised: use the expected loss over the noise (linear networks only).
      gamma: weight decay (>= 0).
      spectrum: ``daedyn.spectrum.Spectrum`` of X^T X (computed when None).
      x_heldout: held-out inputs (M, D) for ``heldout_loss``.
      record_every: epochs between records.
      optimizer: see :func:`train_fn` (default gradient descent ``optax.sgd(alpha)``).
      init_scale: std of the initial weights (1e-4 in Figure 5, 1e-3 in Figure 6).
      batch_size: minibatch size (None: full batch).
      precision: matmul precision ("highest" for comparisons with theory on GPUs).
      loss_scale: "paper" or "mse" (Figure 6's mean squared error).
      bias: add biases (off in the paper).
      path: "auto", "eigen", "sigma" or "data".
      params: start from these parameters instead of a random initialisation (resuming).
      observables: subset of :data:`OBSERVABLES`.
      progress: called as ``progress(epochs_done, epochs_total)`` after each chunk.
      chunk_records: records per compiled chunk (for progress; default all in one).
      start_epoch: epoch counter to start from (noise keys are ``fold_in(key, epoch)``, so a resumed
        run continues the same noise sequence).
      dtype: floating dtype (default that of ``x``).
      checkpoint: a ``.npz`` path. The state and the records so far are written there after every
        chunk (about ten per run unless ``chunk_records`` is given), atomically; a later call with
        the same data, settings and key resumes from it (an interrupted run loses at most one
        chunk) and a finished one returns at once. A checkpoint of a different run is refused
        with ``ValueError`` and left untouched. (A custom optimiser is identified by its type
        only: change its settings and use a new path.)
    Returns:
      :class:`TrainResult` with T = epochs / record_every + 1 records.
    Raises:
      ValueError: for bad arguments. Warns (RuntimeWarning) when alpha * lam_max / N >= 1 for
      gradient descent on a linear network.
    Example:
      >>> x = jr.uniform(jr.key(0), (64, 6))
      >>> r = train(x, hidden=3, key=jr.key(1), epochs=200, alpha=0.5, record_every=100,
      ...           noise=daedyn.noise.gaussian(0.05), marginalised=True, init_scale=1e-2)
      >>> r.mapping.shape, r.singular_values.shape, r.epochs.tolist()
      ((3, 6), (3, 3), [0, 100, 200])
    """
    return _drive(x, hidden=hidden, key=key, epochs=epochs, alpha=alpha, activation=activation,
                  noise=noise, marginalised=marginalised, gamma=gamma, spectrum=spectrum,
                  x_heldout=x_heldout, record_every=record_every, optimizer=optimizer,
                  init_scale=init_scale, batch_size=batch_size, precision=precision,
                  loss_scale=loss_scale, bias=bias, path=path, params=params, observables=observables,
                  progress=progress, chunk_records=chunk_records, start_epoch=start_epoch, dtype=dtype,
                  batched=False, checkpoint=checkpoint)


def train_batch(x: ArrayLike, *, hidden: int, key: Array, epochs: int, alpha: ArrayLike,
                activation: models.Activation = None, noise: noise_lib.Noise | str | None = None,
                marginalised: bool = False, gamma: ArrayLike = 0.0, spectrum: Any = None,
                x_heldout: ArrayLike | None = None, record_every: int = 100,
                optimizer: Any = None, init_scale: float = 1e-4, batch_size: int | None = None,
                precision: Any = None, loss_scale: Literal["paper", "mse"] = "paper", bias: bool = False,
                path: Literal["auto", "eigen", "sigma", "data"] = "auto",
                observables: Sequence[str] | None = None,
                progress: Callable[[int, int], None] | None = None, chunk_records: int | None = None,
                dtype: Any = None, checkpoint: str | os.PathLike | None = None) -> TrainResult:
    """Train a batch of networks in one vmapped, compiled run (seeds x hyperparameters).

    ``alpha``, ``gamma``, ``noise.variance`` and ``key`` broadcast to a common batch shape S
    (a single key is split into one per run); every field of the result gets the leading axes S.
    All runs share the data, architecture, noise kind and options. Figure 5's AE/WDAE/DAE triple:
    ``gamma=[0, 0.5, 0]`` with ``noise=gaussian([0, 0, 0.5])`` and ``marginalised=True``.

    Args: as :func:`train` (``noise`` may also be "gaussian"/"laplace" with ``variance`` 0).
    Returns:
      :class:`TrainResult` with batch axes S first (``epochs`` and ``eigvals`` are shared).
    Example:
      >>> x = jr.uniform(jr.key(0), (64, 6))
      >>> r = train_batch(x, hidden=3, key=jr.key(1), epochs=100, alpha=0.5, record_every=50,
      ...                 gamma=jnp.array([0.0, 0.01, 0.0]), marginalised=True,
      ...                 noise=daedyn.noise.gaussian(jnp.array([0.0, 0.0, 0.05])), init_scale=1e-2)
      >>> r.mapping.shape, r.tau.shape
      ((3, 3, 6), (3,))
    """
    return _drive(x, hidden=hidden, key=key, epochs=epochs, alpha=alpha, activation=activation,
                  noise=noise, marginalised=marginalised, gamma=gamma, spectrum=spectrum,
                  x_heldout=x_heldout, record_every=record_every, optimizer=optimizer,
                  init_scale=init_scale, batch_size=batch_size, precision=precision,
                  loss_scale=loss_scale, bias=bias, path=path, params=None, observables=observables,
                  progress=progress, chunk_records=chunk_records, start_epoch=0, dtype=dtype,
                  batched=True, checkpoint=checkpoint)


# --------------------------------------------------------------------------------------------------
# Theory comparison
# --------------------------------------------------------------------------------------------------

def initial_w0(params: Params, eigvecs: ArrayLike, *, kind: Literal["balanced", "shared"] = "balanced",
               precision: Any = "highest") -> Array:
    """Initial value w0 per direction for the small-initialisation theory.

    ``"balanced"``: each direction's own balanced-equivalent start |u_j + v_j|^2 / 4 with
    u_j = (W1 V)[:, j], v_j = (V^T W2)[j, :]: during training u_j + v_j grows like exp(lam t / tau)
    while u_j - v_j decays, so a direction behaves like the balanced solution started from this w0
    (w = ((|u+v|^2 - |u-v|^2) / 4) at all times). ``"shared"``: the authors' choice, one value for
    every direction, the mean of the initial singular values of W2 W1 (figure-settings.md).

    Returns:
      (D,) array (``"shared"`` broadcast to D), with the batch axes of ``params``.
    """
    if kind not in ("balanced", "shared"):
        raise ValueError(f"kind must be 'balanced' or 'shared'; got {kind!r}")
    mm = _mm(precision)
    v = jnp.asarray(eigvecs)

    def one(w1, w2):
        u = mm(w1, v)  # (H, D)
        vv = mm(v.T, w2).T  # (H, D)
        if kind == "balanced":
            return jnp.sum(jnp.square(u + vv), axis=0) / 4
        sv = _svdvals_product(w2, w1, mm)
        return jnp.full((v.shape[0],), jnp.mean(sv), sv.dtype)

    w1, w2 = jnp.asarray(params["w1"]), jnp.asarray(params["w2"])
    batch = w1.shape[:-2]
    f = one
    for _ in batch:
        f = jax.vmap(f)
    return f(w1, w2)


class TheoryComparison(NamedTuple):
    """Measured mapping next to the theory (all (..., T, D) except the RMSEs (..., D)).

    Attributes:
      measured: the recorded per-direction mapping (or sorted singular values for "strength").
      continuous: the continuous-time small-init prediction (daedyn.theory.small_init_trajectory).
      discrete: the same balanced start iterated with gradient descent, one step per epoch.
      w0: initial value used per direction.
      rmse_continuous, rmse_discrete: RMSE over time per direction.
    """

    measured: Array
    continuous: Array
    discrete: Array
    w0: Array
    rmse_continuous: Array
    rmse_discrete: Array


def _balanced_gd(lam, eps, gamma, n, alpha_over_n, w0, epochs, record_every):
    """Balanced scalar GD (w1 = w2 = u, w = u^2).

    u <- u + (alpha/N)(u lam (1 - u^2) - eps u^3 - N gamma u).
    """

    def step(u, _):
        return u + alpha_over_n * (u * lam * (1 - u * u) - eps * u ** 3 - n * gamma * u), None

    def chunk(u, _):
        u, _ = jax.lax.scan(step, u, None, length=record_every)
        return u, u * u

    u0 = jnp.sqrt(w0)
    _, ws = jax.lax.scan(chunk, u0, None, length=epochs // record_every)
    return jnp.concatenate([(u0 * u0)[None], ws])


def compare_with_theory(result: TrainResult, *, eigvecs: ArrayLike,
                        measure: Literal["mapping", "strength"] = "mapping",
                        w0: Literal["balanced", "shared"] | ArrayLike = "balanced") -> TheoryComparison:
    """Per-direction theory next to a linear run's measurements, with RMSE per direction.

    The continuous prediction is :func:`daedyn.theory.small_init_trajectory` with the run's
    (tau, eps, gamma, N); the discrete one iterates the balanced gradient-descent recursion of the
    same scalar dynamics one epoch at a time (default optimiser, "paper" scaling). ``measure``:
    "mapping" compares diag(V^T W V) per direction j with lam_j; "strength" compares the sorted
    singular values of W2 W1 with the sorted eigenvalues (Figure 5), directions 0..H-1.

    Args:
      result: from :func:`train` (unbatched) with a linear network.
      eigvecs: V of the training Sigma (for ``w0`` read from the initial weights).
      measure: "mapping" or "strength".
      w0: "balanced" (per direction, :func:`initial_w0`), "shared" (authors' mean initial singular
        value) or an explicit array broadcasting to (D,).
    Returns:
      :class:`TheoryComparison`.
    """
    from daedyn import theory

    if measure not in ("mapping", "strength"):
        raise ValueError(f"measure must be 'mapping' or 'strength'; got {measure!r}")
    if result.singular_values is None and measure == "strength":
        raise ValueError("measure='strength' needs a linear run with singular_values recorded")
    if isinstance(w0, str):
        w0_arr = initial_w0(result.init_params, eigvecs, kind=w0)
    else:
        check_range("w0", w0, 0.0, lo_open=True)
        w0_arr = jnp.broadcast_to(jnp.asarray(w0), result.eigvals.shape)
    lam = result.eigvals
    if measure == "strength":
        k = result.singular_values.shape[-1]
        measured = result.singular_values
        lam = lam[:k]
        w0_arr = w0_arr[:k]
    else:
        measured = result.mapping
    dt = measured.dtype
    t = jnp.asarray(result.epochs, dt)[:, None]
    n = result.n
    cont = theory.small_init_trajectory(t, lam[None, :], result.eps, result.gamma,
                                        w0=jnp.asarray(w0_arr, dt)[None, :], tau=result.tau, n=n)
    epochs = int(result.epochs[-1] - result.epochs[0])
    rec = int(result.epochs[1] - result.epochs[0]) if result.epochs.shape[0] > 1 else max(epochs, 1)
    disc = _balanced_gd(lam, result.eps, result.gamma, jnp.asarray(n, dt), 1.0 / result.tau,
                        jnp.asarray(w0_arr, dt), epochs, rec) if epochs else jnp.asarray(w0_arr)[None]
    rmse = lambda a: jnp.sqrt(jnp.mean(jnp.square(a - measured), axis=0))
    return TheoryComparison(measured=measured, continuous=cont, discrete=disc, w0=w0_arr,
                            rmse_continuous=rmse(cont), rmse_discrete=rmse(disc))
