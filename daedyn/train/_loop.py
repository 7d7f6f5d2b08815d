"""The one training loop: pure pieces (start, advance, finish) and :func:`train_fn` built from them.

A run's state is the carry ``(params, opt_state, epoch)`` with the parameters in the run's basis (the
eigenbasis of Sigma for ``path="eigen"``). :func:`start` builds it and observes epoch 0,
:func:`advance_fn` moves it on by whole records inside ``lax.scan`` and :func:`finish` rotates the
parameters back. :func:`train_fn` is the three composed; the driver (:mod:`daedyn.train._driver`)
calls the same three, chunk by chunk, to report progress and write checkpoints in between.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import jax
import jax.numpy as jnp
import jax.random as jr
import optax
from jax import Array

from daedyn import _linear, models
from daedyn import noise as noise_lib
from daedyn.train import _corruption as corruption_lib
from daedyn.train._config import Hyper, LoopConfig, Params, loop_config
from daedyn.train._data import TrainData
from daedyn.train._objective import from_eigen, gradient, observe, to_eigen
from daedyn.train._schedule import hyper_at_epoch

__all__ = ["make_optimizer", "start", "advance_fn", "finish", "run_fn", "train_fn"]

_SHUFFLE = 0x5EED  # fold_in constant of the minibatch shuffling key

Carry = tuple[Params, Any, Array]


def make_optimizer(cfg: LoopConfig, alpha) -> optax.GradientTransformation:
    """The run's optax transformation: ``optax.sgd(alpha)`` by default."""
    opt = cfg.optimizer
    if opt is None:
        return optax.sgd(alpha)
    if isinstance(opt, optax.GradientTransformation):
        return opt
    return opt(alpha)


def _epoch_fn(cfg: LoopConfig):
    """One epoch: a full-batch step, or a scan over shuffled minibatches."""

    def step(params, opt_state, data, hyper, key, batch_idx, opt, unit_noise=None):
        grads = gradient(cfg, params, data, hyper, key, batch_idx, unit_noise)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    def epoch(carry, data, hyper, key):
        params, opt_state, ep = carry
        hyper = hyper_at_epoch(hyper, ep)  # epoch k uses eps(k), corruption.at(k) (train/_schedule.py)
        opt = make_optimizer(cfg, hyper.alpha)
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
            if cfg.corrupt:  # the epoch's corrupted inputs
                unit = corruption_lib.corrupt(hyper, k, data.x, cfg.noise[1], data.n)
            elif cfg.noise is not None and not cfg.marginalised:
                nz = noise_lib.Noise(cfg.noise[0], 1.0, cfg.noise[1])
                unit = nz.unit_sample(k, data.x.shape, params["w1"].dtype)

            def inner(c, idx):
                p, s = c
                u = None if unit is None else jax.tree.map(lambda a: a[idx], unit)  # a draw may be a pytree
                return step(p, s, data, hyper, k, idx, opt, u), None

            (params, opt_state), _ = jax.lax.scan(inner, (params, opt_state), perm)
        return params, opt_state, ep + 1

    return jax.checkpoint(epoch) if cfg.remat else epoch


def start(cfg: LoopConfig, params: Params, data: TrainData, hyper: Hyper, start_epoch=0, *,
          observe_start: bool = True) -> tuple[Carry, dict[str, Array] | None]:
    """The state of a run starting from ``params`` (input basis), and its epoch-0 observables
    (None unless ``observe_start``)."""
    mm = _linear.matmul_fn(cfg.precision)
    p = to_eigen(params, data.eigvecs, mm) if cfg.path == "eigen" else params
    alpha = hyper_at_epoch(hyper, start_epoch).alpha  # a schedule's first value: the state's structure
    carry = (p, make_optimizer(cfg, alpha).init(p), jnp.asarray(start_epoch, jnp.int32))
    return carry, observe(cfg, p, data) if observe_start else None


def advance_fn(cfg: LoopConfig, n_records: int) -> Callable[..., tuple[Carry, dict[str, Array]]]:
    """Pure ``advance(carry, data, hyper, key, include_start=False) -> (carry, records)``:
    ``n_records`` records of ``save_every`` epochs each, observed after each; records have a
    leading axis ``n_records`` (``n_records + 1`` with ``include_start``: the state as given is
    observed first, inside the same loop)."""
    epoch = _epoch_fn(cfg)

    def chunk(carry, data, hyper, key):
        def body(c, _):
            return epoch(c, data, hyper, key), None

        carry, _ = jax.lax.scan(body, carry, None, length=cfg.save_every)
        return carry

    if cfg.remat:
        chunk = jax.checkpoint(chunk)

    def advance(carry, data, hyper, key, include_start=False):
        if cfg.marginalised:  # a corruption's term C + eps I in the run's basis (its data part once
            # per chunk; a schedule's factor per epoch)
            hyper = corruption_lib.with_term(hyper, data, cfg.path)

        def outer(c, train_now):
            if train_now is True:
                c = chunk(c, data, hyper, key)
            else:
                c = jax.lax.cond(train_now, lambda c: chunk(c, data, hyper, key), lambda c: c, c)
            return c, observe(cfg, c[0], data)

        if not include_start:
            return jax.lax.scan(lambda c, _: outer(c, True), carry, None, length=n_records)
        # The start is observed by the first iteration (which does not train) rather than before
        # the loop: with an observation outside the loop, XLA's CPU scheduler (jaxlib 0.10.2) can
        # deadlock vmapped runs whose observables call LAPACK (singular values).
        return jax.lax.scan(outer, carry, jnp.arange(n_records + 1) > 0)

    return advance


def finish(cfg: LoopConfig, carry: Carry, data: TrainData) -> Params:
    """The parameters of a state, back in the input basis."""
    mm = _linear.matmul_fn(cfg.precision)
    return from_eigen(carry[0], data.eigvecs, mm) if cfg.path == "eigen" else carry[0]


def run_fn(cfg: LoopConfig) -> Callable[..., tuple[Params, dict[str, Array]]]:
    """:func:`start`, all of the run's records and :func:`finish`, composed (what :func:`train_fn`
    returns)."""
    advance = advance_fn(cfg, cfg.epochs // cfg.save_every)

    def run(params, data, hyper, key, start_epoch=0):
        carry, _ = start(cfg, params, data, hyper, start_epoch, observe_start=False)
        carry, recs = advance(carry, data, hyper, key, include_start=True)
        return finish(cfg, carry, data), recs

    return run


def train_fn(*, epochs: int, save_every: int | None = None, activation: models.Activation = None,
             noise: noise_lib.Noise | str | None = None, marginalised: bool = False,
             loss_scale: Literal["paper", "mse"] = "paper",
             path: Literal["auto", "eigen", "sigma", "data"] = "auto", batch_size: int | None = None,
             optimizer: optax.GradientTransformation | Callable[[Array], Any] | None = None,
             precision: Any = None, observables: Sequence[str] | None = None,
             remat: bool = True, bias: bool = False) -> Callable[..., tuple[Params, dict[str, Array]]]:
    """Pure, differentiable training loop: returns ``run(params, data, hyper, key, start_epoch=0)``.

    ``run`` trains from ``params`` (input basis) for ``epochs`` epochs and returns
    ``(final_params, records)``, where ``records[name]`` has a leading axis of
    ``epochs // save_every + 1`` records (epoch 0 first). Everything a user may tune is an
    argument of ``run`` and is traced: ``hyper = Hyper(alpha, gamma, eps)``; the data come in as a
    :class:`TrainData` pytree (nothing large is closed over). With the same ``key`` every call draws
    the same noise (keys are ``fold_in(key, epoch)``), so ``jax.grad(lambda h: loss(run(p, d, h, k)))``
    is a pathwise (reparameterised) gradient. ``jax.checkpoint`` wraps each epoch and each chunk of
    ``save_every`` epochs, so reverse-mode memory grows with the number of records, not epochs.

    On the eigen and Sigma paths the gradient is the closed form of the shared linear core
    (:func:`daedyn._linear.grad` of the expected loss), handed to the optax optimiser; on the data
    path it is ``jax.grad`` of the sampled (or marginalised) objective.

    Args:
      epochs: number of epochs (>= 0).
      save_every: epochs between records (default: ``epochs``, i.e. first and last only); must
        divide ``epochs``.
      activation: None/"linear" or a nonlinearity (see :func:`daedyn.models.get_activation`).
      noise: None, "gaussian", "laplace" or a :class:`daedyn.noise.Noise` (only its kind is used;
        the level is ``hyper.eps``, sampled with variance eps / N).
      marginalised: train a linear network on the expected loss over the noise (Eq. 1) instead of
        sampling it; the level is ``hyper.eps`` (no ``noise`` needed).
      loss_scale: "paper" (1/(2B) sum of squared errors; tau = N / alpha) or "mse" (mean over B x D
        entries, Figure 6; tau = N D / (2 alpha)).
      path: "auto" (eigenbasis when possible with the default optimiser, else Sigma, else data),
        "eigen" (O(D H^2) per step, never touches X; exact for rotation-equivariant optimisers such
        as gradient descent), "sigma" (Sigma = X^T X in the input basis, O(D^2 H)) or "data" (the
        data matrix, O(N D H), as the authors did).
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
      ``run(params, data, hyper, key, start_epoch=0) -> (params, records)``.
    Raises:
      ValueError: for inconsistent options (checked here, before tracing).
    Example:
      >>> import jax, jax.random as jr
      >>> from daedyn import models, train
      >>> x = jr.uniform(jr.key(0), (32, 4))
      >>> data = train.prepare_data(x)
      >>> run = jax.jit(train.train_fn(epochs=50, save_every=25, marginalised=True))
      >>> p0 = models.init_autoencoder(4, 2, key=jr.key(1), init_scale=1e-2)
      >>> p, rec = run(p0, data, train.Hyper(alpha=0.1, gamma=0.0, eps=3.2), jr.key(2))  # eps = N s^2
      >>> rec["mapping"].shape, rec["train_loss"].shape
      ((3, 4), (3,))
    """
    save_every = max(int(epochs if save_every is None else save_every), 1)
    cfg = loop_config(epochs=epochs, save_every=save_every, activation=activation, noise=noise,
                      marginalised=marginalised, loss_scale=loss_scale, path=path, batch_size=batch_size,
                      optimizer=optimizer, precision=precision, observables=observables, remat=remat,
                      bias=bias)
    return run_fn(cfg)
