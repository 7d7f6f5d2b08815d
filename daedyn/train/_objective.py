"""The training objective, its gradient and the recorded observables of one network.

The linear algebra of the expected loss (Sigma and eigenbasis paths, the marginalised corruption
term, the observables of a linear network) comes from the shared core :mod:`daedyn._linear`; what
is left here is what only training has: the data path with sampled noise or minibatches, nonlinear
networks, and the supplement-F mapping estimate.

Scaling (docs/CONTRACTS.md): for B inputs, L = (sum_i ||x_i - f(x_i + n_i)||^2 + C) / (2 n_L) +
(gamma / 2)(||W1||^2 + ||W2||^2), with n_L = B ("paper") or B D / 2 ("mse", the mean over entries;
:func:`~daedyn.train._config.normaliser`) and C = eps (B / N) tr(W W^T) for the marginalised loss.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array

from daedyn import _linear, models
from daedyn import noise as noise_lib
from daedyn.train import _corruption as corruption_lib
from daedyn.train._config import Hyper, LoopConfig, Params, normaliser
from daedyn.train._data import TrainData

__all__ = ["factors", "with_factors", "to_eigen", "from_eigen", "data_objective", "gradient", "observe"]


def factors(params: Params) -> tuple[Array, ...]:
    """The network's factors (W1, ..., WL) as the core takes them (L = 2: (W1, W2))."""
    return models.weights(params)


def with_factors(params: Params, ws) -> Params:
    """``params`` with W1 .. WL replaced by ``ws`` (biases kept)."""
    return {**params, **{f"w{l}": w for l, w in enumerate(ws, start=1)}}


def to_eigen(params: Params, v: Array, mm) -> Params:
    """(W1 V, V^T W2): the parameters in the eigenbasis of Sigma."""
    return with_factors(params, _linear.to_eigenbasis(factors(params), v, mm))


def from_eigen(params: Params, v: Array, mm) -> Params:
    """Back to the input basis (inverse of :func:`to_eigen`)."""
    return with_factors(params, _linear.from_eigenbasis(factors(params), v, mm))


def _weight_decay(params: Params, gamma: Array) -> Array:
    return gamma / 2 * _linear.weight_norm(factors(params))


def data_objective(cfg: LoopConfig, params: Params, data: TrainData, hyper: Hyper, key, batch_idx,
                   unit_noise=None) -> Array:
    """The objective of one step on the data matrix (rows ``batch_idx``, all rows when None).

    Sampled noise is sqrt(eps / N) times a unit-variance draw from ``key`` for the whole batch, or
    ``unit_noise`` (the rows of the epoch's (N, D) draw picked by ``batch_idx``). A corruption
    (``hyper.corruption``, masking etc., the one in force at the epoch) corrupts the batch from
    ``key`` (then, with an eps schedule, Gaussian noise of variance eps / N is added), or
    ``unit_noise`` holds the rows of the epoch's corrupted inputs. When marginalised, ``hyper.eps``
    may be the corruption term C + eps I in the input basis ((D,) or (D, D);
    :func:`daedyn.train._corruption.with_term`).
    """
    mm = _linear.matmul_fn(cfg.precision)
    dtype = params["w1"].dtype
    gamma = jnp.asarray(hyper.gamma, dtype)
    eps = jnp.asarray(hyper.eps, dtype)
    xb = data.x if batch_idx is None else data.x[batch_idx]
    count, d = xb.shape
    inputs = xb
    if cfg.marginalised and hyper.mean_scale is not None:  # raw masking: the corrupted input's mean s x
        inputs = xb * jnp.asarray(hyper.mean_scale, dtype)
    if cfg.corrupt:  # a corruption (+ additive noise of level eps with an eps schedule)
        inputs = unit_noise if unit_noise is not None else corruption_lib.corrupt(
            hyper, key, xb, cfg.noise[1], data.n)
    elif cfg.noise is not None and not cfg.marginalised:
        scale = jnp.sqrt(eps / data.n)  # per-component standard deviation s
        if unit_noise is None:
            unit_noise = noise_lib.Noise(cfg.noise[0], 1.0, cfg.noise[1]).unit_sample(key, xb.shape, dtype)
        inputs = xb + scale * unit_noise
    if cfg.corrupt and callable(getattr(hyper.corruption, "squared_error", None)):
        # a denoiser across noise levels (daedyn.diffusion): the draw scores the network's map itself
        total = hyper.corruption.squared_error(inputs, xb, lambda z: models.reconstruct(
            params, z, cfg.activation, precision=cfg.precision))
    else:
        err = xb - models.reconstruct(params, inputs, cfg.activation, precision=cfg.precision)
        total = jnp.sum(jnp.square(err))
    if cfg.marginalised:  # the batch's share B / N of the corruption term eps tr(W W^T)
        total = total + _linear.noise_term(factors(params), eps * (count / data.n), mm)
    return total / (2 * normaliser(cfg.loss_scale, count, d, dtype)) + _weight_decay(params, gamma)


def gradient(cfg: LoopConfig, params: Params, data: TrainData, hyper: Hyper, key, batch_idx,
             unit_noise=None) -> Params:
    """Gradient of the objective with respect to the parameters.

    Eigen and Sigma paths: the closed-form gradient of the core's expected loss
    (:func:`daedyn._linear.grad`, equal to ``jax.grad`` of :func:`daedyn._linear.loss`), with Sigma
    the eigenvalues lam (a diagonal) or the (D, D) matrix X^T X, and corruption eps (marginalised)
    or 0. Data path: ``jax.grad`` of :func:`data_objective`.
    """
    if cfg.path == "data":
        return jax.grad(data_objective, argnums=1)(cfg, params, data, hyper, key, batch_idx, unit_noise)
    mm = _linear.matmul_fn(cfg.precision)
    dtype = params["w1"].dtype
    ws = factors(params)
    h, d = ws[0].shape
    form = _linear.choose_form(d, h) if len(ws) == 2 else "gram"
    sigma = data.eigvals if cfg.path == "eigen" else data.sigma
    eps = jnp.asarray(hyper.eps, dtype) if cfg.marginalised else jnp.zeros((), dtype)
    if cfg.marginalised and hyper.mean_scale is not None:  # K = s Sigma (raw masking: s = 1 - p)
        sigma = sigma * jnp.asarray(hyper.mean_scale, dtype)
    grads = _linear.grad(ws, sigma, eps, n=normaliser(cfg.loss_scale, data.n, d, dtype),
                         gamma=jnp.asarray(hyper.gamma, dtype), mm=mm, form=form)
    return with_factors(params, grads)


def _linear_observables(cfg: LoopConfig, params: Params, data: TrainData, mm) -> dict[str, Array]:
    ws = factors(params if cfg.path == "eigen" else to_eigen(params, data.eigvecs, mm))
    obs = {}
    if "mapping" in cfg.observables:
        obs["mapping"] = _linear.mapping(ws, mm)  # diag(V^T W V)
    if "singular_values" in cfg.observables:
        obs["singular_values"] = _linear.svdvals(ws, mm)
    if "train_loss" in cfg.observables:
        obs["train_loss"] = _linear.loss(ws, data.eigvals, 0.0, n=data.n, mm=mm)
    if "heldout_loss" in cfg.observables and data.sigma_heldout_eig is not None:
        obs["heldout_loss"] = _linear.loss(ws, data.sigma_heldout_eig, 0.0, n=data.n_heldout, mm=mm)
    return obs


def _nonlinear_observables(cfg: LoopConfig, params: Params, data: TrainData, mm) -> dict[str, Array]:
    obs = {}
    lam = data.eigvals
    if "mapping" in cfg.observables or "train_loss" in cfg.observables:
        xhat = models.reconstruct(params, data.x, cfg.activation, precision=cfg.precision)
        if "mapping" in cfg.observables:  # supplement F: [V^T (sum_i xhat_i x_i^T) V]_jj / lam_j
            lam_hat = jnp.sum(mm(xhat, data.eigvecs) * data.xv, axis=0)
            ok = lam > lam[0] * lam.shape[0] * jnp.finfo(lam.dtype).eps
            safe = jnp.where(ok, lam, 1.0)  # double where: the masked branch stays finite
            obs["mapping"] = jnp.where(ok, lam_hat / safe, jnp.nan)
        if "train_loss" in cfg.observables:
            obs["train_loss"] = jnp.sum(jnp.square(data.x - xhat)) / (2 * data.n)
    if "heldout_loss" in cfg.observables and data.x_heldout is not None:
        xh = data.x_heldout
        xhat_h = models.reconstruct(params, xh, cfg.activation, precision=cfg.precision)
        obs["heldout_loss"] = jnp.sum(jnp.square(xh - xhat_h)) / (2 * data.n_heldout)
    return obs


def observe(cfg: LoopConfig, params: Params, data: TrainData) -> dict[str, Array]:
    """The recorded observables of the current parameters (given in the run's basis)."""
    mm = _linear.matmul_fn(cfg.precision)
    if cfg.linear:
        obs = _linear_observables(cfg, params, data, mm)
    else:
        obs = _nonlinear_observables(cfg, params, data, mm)
    if "weight_norm" in cfg.observables:
        obs["weight_norm"] = _linear.weight_norm(factors(params))
    return obs
