"""The driver: ``train`` and ``train_batch`` over the pure pieces of the training loop.

A driver run prepares the data (:func:`~daedyn.train.prepare_data`), converts the noise to eps once
(:func:`daedyn.noise.eps_of`), checks gradient-descent stability with the shared check
(:func:`daedyn._linear.check_gd_stability`), then runs :func:`~daedyn.train._loop.start`,
:func:`~daedyn.train._loop.advance_fn` and :func:`~daedyn.train._loop.finish` (the same functions
:func:`~daedyn.train.train_fn` composes), chunk by chunk when progress or checkpoints ask for it and
as one compiled call otherwise. :func:`train_batch` is the same driver with those pieces vmapped.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from daedyn import _checkpoint, _linear, models
from daedyn import noise as noise_lib
from daedyn._checks import check_int, check_range
from daedyn._progress import starting
from daedyn.schedules import change_steps
from daedyn.train import _corruption as corruption_lib
from daedyn.train import _log, _loop, _schedule
from daedyn.train._config import Hyper, LoopConfig, Params, TrainConfig, loop_config, rate_factor
from daedyn.train._data import TrainData, prepare_data

__all__ = ["TrainResult", "train", "train_batch"]


class TrainResult(NamedTuple):
    """Recorded observables of a run; arrays carry the batch axes of :func:`train_batch` first.

    Attributes:
      t: record times in epochs (T,), starting at 0 (``start_epoch`` when resuming).
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
      eps: noise level N s^2 (the schedule itself for a run with ``eps=schedule``).
      gamma: weight decay in the paper's units, like ``tau``: the given gamma ("paper") or
        gamma D / 2 ("mse"), so that ``theory`` and :func:`compare_with_theory` apply unchanged.
      data: which rows were trained on, when ``x`` was a :class:`daedyn.data.Dataset`: its
        ``subset`` record (name, method, seed, classes, counts; static, not a leaf); else None.
    """

    t: Array
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
    data: Any = None

    def to_xarray(self, batch_dims=None, coords=None, *, time_dim: str = "epoch"):
        """The run as an ``xarray.Dataset`` with the dimension names of :mod:`daedyn.sweep`'s
        training entry: mapping over (``epoch``, ``direction``), singular values over
        (``epoch``, ``component``), losses and weight norm over ``epoch``, ``lam`` (the
        eigenvalues) over ``direction``, tau / eps / gamma per run, and the final weight matrices
        w1 .. wL in the input basis, each over its own dimensions
        (:func:`daedyn._xarray.factor_dims`: ``hidden`` and ``input`` at depth 2, ``hidden_1`` ..
        ``hidden_{L-1}`` and ``input`` at depth L); ``attrs["n"]`` is N and ``attrs["depth"]`` L,
        and a run on a :class:`daedyn.data.Dataset` adds its subset record (``dataset``,
        ``subset``, ``subset_seed``, ``subset_classes``, ``subset_counts``, ...).
        A :func:`train_batch` result has its batch axes first (name them:
        ``batch_dims=("seed",)`` or ``("gamma", "eps")``). A run under an eps schedule stores eps
        as its values at the record times (over ``epoch``).

        Args:
          batch_dims: names of the leading batch axes (unnamed: ``batch``, ``batch_1``, ...).
          coords: values along named dimensions (e.g. ``{"seed": [0, 1, 2]}``).
          time_dim: the name of the record-time dimension (default ``"epoch"``).
        Raises:
          ImportError: xarray (the ``sweep`` extra) is not installed.
        """
        from daedyn._xarray import dataset, factor_fields
        from daedyn.schedules import is_schedule

        t = (time_dim,)
        per_run = {}
        for name in ("tau", "eps", "gamma"):  # a schedule: its values at the record times
            v = getattr(self, name)
            per_run[name] = (v(jnp.asarray(self.t)), t) if is_schedule(v) else (v, ())
        weights = factor_fields(self.params)
        return dataset({"mapping": (self.mapping, t + ("direction",)),
                        "singular_values": (self.singular_values, t + ("component",)),
                        "weight_norm": (self.weight_norm, t), "train_loss": (self.train_loss, t),
                        "heldout_loss": (self.heldout_loss, t), "lam": (self.eigvals, ("direction",)),
                        **per_run, **weights},
                       time=(time_dim, self.t), batch_dims=batch_dims, coords=coords,
                       attrs={"n": int(self.n), "depth": len(weights),
                              **(self.data.attrs() if self.data is not None else {})},
                       what="TrainResult.to_xarray")


# A clean pytree: array leaves only. N (a Python int) is static metadata, kept in the treedef with
# the names of the fields that are None (nonlinear nets, no held-out data), so that
# jax.tree.map(f, result) applies f to arrays only and returns a TrainResult.
_TRAIN_STATIC = ("n", "data")


def _flatten_result(r: TrainResult):
    present = tuple(f for f in TrainResult._fields if f not in _TRAIN_STATIC and getattr(r, f) is not None)
    keys = tuple(jax.tree_util.GetAttrKey(f) for f in present)
    return list(zip(keys, (getattr(r, f) for f in present), strict=True)), (present, r.n, r.data)


def _unflatten_result(aux, children) -> TrainResult:
    present, n, data = aux
    given = dict(zip(present, children, strict=True))
    return TrainResult(**{f: given.get(f) for f in TrainResult._fields if f not in _TRAIN_STATIC}, n=n,
                       data=data)


jax.tree_util.register_pytree_with_keys(TrainResult, _flatten_result, _unflatten_result)


class _Compiled(NamedTuple):
    begin: Callable  # (key, params | None, scale, data, hyper, start_epoch) -> (carry, first, p0, key)
    advance: Callable  # n_records -> jitted advance(carry, data, hyper, key)
    finish: Callable  # (carry, data) -> params
    whole: Callable  # (key, params | None, scale, data, hyper, start_epoch) -> (records, params, p0)


@functools.lru_cache(maxsize=32)
def _compiled(loop: LoopConfig, batched: bool, hidden, bias: bool) -> _Compiled:
    """The loop's pure pieces, jitted (and vmapped over runs when ``batched``), once per structure."""

    def init(key, p_given, scale, data):
        k_init, k_run = jr.split(key)
        if p_given is None:
            p_given = models.init_autoencoder(data.eigvals.shape[0], hidden, key=k_init, init_scale=scale,
                                              bias=bias, dtype=data.eigvals.dtype)
        return p_given, k_run

    start = functools.partial(_loop.start, loop)
    finish = functools.partial(_loop.finish, loop)
    run = _loop.run_fn(loop)
    advance = lambda m: _loop.advance_fn(loop, m)
    if batched:
        init = jax.vmap(init, in_axes=(0, None, None, None))
        start = jax.vmap(start, in_axes=(0, None, 0, None))
        finish = jax.vmap(finish, in_axes=(0, None))
        run = jax.vmap(run, in_axes=(0, None, 0, 0, None))
        advance = lambda m: jax.vmap(_loop.advance_fn(loop, m), in_axes=(0, None, 0, 0))

    def begin(key, p_given, scale, data, hyper, start_epoch):
        p0, k_run = init(key, p_given, scale, data)
        carry, first = start(p0, data, hyper, start_epoch)
        return carry, first, p0, k_run

    def whole(key, p_given, scale, data, hyper, start_epoch):
        p0, k_run = init(key, p_given, scale, data)
        final, recs = run(p0, data, hyper, k_run, start_epoch)
        return recs, final, p0

    return _Compiled(begin=jax.jit(begin), advance=functools.cache(lambda m: jax.jit(advance(m))),
                     finish=jax.jit(finish), whole=jax.jit(whole))


def train(x: ArrayLike, *, key: Array, alpha: ArrayLike, gamma: ArrayLike = 0.0,
          noise: noise_lib.Noise | None = None, eps: Any = None, spectrum: Any = None,
          x_heldout: ArrayLike | None = None,
          params: Params | None = None, start_epoch: int = 0,
          progress: Callable[[int, int], None] | None = None,
          checkpoint: str | os.PathLike | None = None, config: TrainConfig | None = None,
          log: Callable[[dict], Any] | None = None, **options) -> TrainResult:
    """Train one autoencoder on ``x`` and record its per-direction dynamics.

    Args:
      x: training inputs (N, D), rows are samples (the paper: pixels in [0, 1], not centred), or a
        :class:`daedyn.data.Dataset` (its ``x``; its subset record goes to ``TrainResult.data``).
      key: PRNG key (split into an initialisation key and a noise/shuffling key).
      alpha: learning rate (> 0); with the default optimiser tau = N / alpha. Or a
        :mod:`daedyn.schedules` schedule of any kind (gradient descent, no ``optimizer=``): epoch k
        steps with alpha(k); the result's ``tau`` is then the schedule N / alpha(t).
      gamma: weight decay (>= 0), or a schedule of any kind (epoch k uses gamma(k)).
      noise: None, or a :class:`daedyn.noise.Noise` (e.g. ``gaussian(0.5)``, ``laplace(b)``),
        sampled every step unless ``marginalised``; its variance s^2 gives eps = N s^2. Or a
        corruption: ``noise.masking(p)``, ``noise.salt_and_pepper(p)`` (sampled only) or
        ``noise.gaussian_covariance(cov)``; marginalised, its term C (from the data's spectrum)
        replaces eps I and ``TrainResult.eps`` is 0 (docs/corruption.md).
      eps: None, or a :mod:`daedyn.schedules` schedule of eps = N s^2 (then ``noise`` is None and
        sampled noise is Gaussian); epoch k uses ``eps(k)`` (docs/schedules.md). ``train`` only.
      spectrum: :class:`daedyn.spectrum.Spectrum` of X^T X (computed when None).
      x_heldout: held-out inputs (M, D) for ``heldout_loss``.
      params: start from these parameters instead of a random initialisation (resuming).
      start_epoch: epoch counter to start from (noise keys are ``fold_in(key, epoch)``, so a resumed
        run continues the same noise sequence).
      progress: called as ``progress(epochs_done, epochs_total)`` after each chunk.
      checkpoint: a ``.npz`` path. The state and the records so far are written there after every
        chunk (about ten per run unless ``chunk_records`` is given), atomically; a later call with
        the same data, settings and key resumes from it (an interrupted run loses at most one
        chunk) and a finished one returns at once. A checkpoint of a different run is refused
        with ``ValueError`` and left untouched. (A custom optimiser is identified by its type
        only: change its settings and use a new path.)
      config: a :class:`TrainConfig` with the run's static structure.
      log: the logging hook: ``log(record)`` for every recorded point, in order, as soon as its
        chunk has finished (the run is split into about ten chunks unless ``chunk_records`` is
        given); ``record`` is a dict of NumPy values, ``{"epoch": int, "mapping": (D,),
        "train_loss": float, ...}``, one key per recorded observable (``daedyn.train._log``;
        TensorBoard / W&B examples in docs/train.md). A resumed run logs only the new records.
      **options: fields of :class:`TrainConfig` as keywords (``hidden`` and ``epochs`` are
        required unless ``config`` is given; they override ``config``'s): ``hidden``, ``epochs``,
        ``save_every=None`` (follows epochs), ``activation=None``, ``marginalised=False``,
        ``loss_scale="paper"``, ``path="auto"``, ``batch_size=None``, ``optimizer=None``, ``precision=None``,
        ``observables=None``, ``bias=False``, ``init_scale=1e-4``, ``chunk_records=None``,
        ``dtype=None``.
    Returns:
      :class:`TrainResult` with T = epochs / save_every + 1 records.
    Raises:
      ValueError: for bad arguments (including an unusable ``checkpoint``). TypeError: for an
      unknown option. OSError: a checkpoint write failed (the previous one is kept). Warns
      (:class:`daedyn.dynamics.UnstableStepWarning`) when gradient descent on a linear network
      cannot settle at its fixed point (supplement D's Hessian, in the paper's units for
      ``loss_scale="mse"``: alpha -> 2 alpha / D, gamma -> gamma D / 2).
    Example:
      >>> import jax.random as jr
      >>> from daedyn import noise, train
      >>> x = jr.uniform(jr.key(0), (64, 6))
      >>> r = train.train(x, hidden=3, key=jr.key(1), epochs=200, alpha=0.5, save_every=100,
      ...                 noise=noise.gaussian(0.05), marginalised=True, init_scale=1e-2)
      >>> r.mapping.shape, r.singular_values.shape, r.t.tolist()
      ((3, 6), (3, 3), [0, 100, 200])
    """
    cfg = TrainConfig.of(config, options, "train")
    (x, record), (x_heldout, _) = _rows(x), _rows(x_heldout)
    return _run(x, cfg, key=key, alpha=alpha, gamma=gamma, noise=noise, spectrum=spectrum,
                x_heldout=x_heldout, params=params, start_epoch=start_epoch, progress=progress,
                checkpoint=checkpoint, batched=False, log=log, eps=eps, name="train")._replace(data=record)


def train_batch(x: ArrayLike, *, key: Array, alpha: ArrayLike, gamma: ArrayLike = 0.0,
                noise: noise_lib.Noise | str | None = None, eps: Any = None, spectrum: Any = None,
                x_heldout: ArrayLike | None = None, progress: Callable[[int, int], None] | None = None,
                checkpoint: str | os.PathLike | None = None, config: TrainConfig | None = None,
                log: Callable[[dict], Any] | None = None, **options) -> TrainResult:
    """Train a batch of networks in one vmapped, compiled run (seeds x hyperparameters).

    ``alpha``, ``gamma``, ``noise.variance`` and ``key`` broadcast to a common batch shape S
    (a single key is split into one per run); every field of the result gets the leading axes S.
    All runs share the data, the :class:`TrainConfig`, and the noise kind. Figure 5's AE/WDAE/DAE
    triple: ``gamma=[0, 0.5, 0]`` with ``noise=gaussian([0, 0, 0.5])`` and ``marginalised=True``.

    Args: as :func:`train` (``noise`` may also be "gaussian"/"laplace" with variance 0); ``eps``,
    ``alpha`` and ``gamma`` may be piecewise-constant schedules whose values (K + 1, *S) give one
    schedule per run (S broadcasts with the other batch shapes; a result's ``tau`` / ``gamma`` is
    then a schedule with values (K + 1, *batch); docs/schedules.md).
    Returns:
      :class:`TrainResult` with batch axes S first (``epochs`` and ``eigvals`` are shared).
    Example:
      >>> import jax.numpy as jnp, jax.random as jr
      >>> from daedyn import noise, train
      >>> x = jr.uniform(jr.key(0), (64, 6))
      >>> r = train.train_batch(x, hidden=3, key=jr.key(1), epochs=100, alpha=0.5, save_every=50,
      ...                       gamma=jnp.array([0.0, 0.01, 0.0]), marginalised=True,
      ...                       noise=noise.gaussian(jnp.array([0.0, 0.0, 0.05])), init_scale=1e-2)
      >>> r.mapping.shape, r.tau.shape
      ((3, 3, 6), (3,))
    """
    cfg = TrainConfig.of(config, options, "train_batch")
    (x, record), (x_heldout, _) = _rows(x), _rows(x_heldout)
    return _run(x, cfg, key=key, alpha=alpha, gamma=gamma, noise=noise, spectrum=spectrum,
                x_heldout=x_heldout, params=None, start_epoch=0, progress=progress,
                checkpoint=checkpoint, batched=True, log=log, eps=eps,
                name="train_batch")._replace(data=record)


def _rows(x):
    """(the array, the subset record) of a :class:`daedyn.data.Dataset`; (x, None) for anything else."""
    from daedyn import data

    return (x.x, x.subset) if isinstance(x, data.Dataset) else (x, None)


def _key_batch_shape(key) -> tuple[int, ...]:
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key.shape
    return key.shape[:-1]


def _resolve_widths(cfg: TrainConfig) -> int | tuple[int, ...]:
    """The hidden widths of a run: an int for the one-hidden-layer network (depth 2), else a tuple
    (H_1, ..., H_{L-1}); ``depth=L`` with one width repeats it."""
    hs = models.widths(cfg.hidden)
    if cfg.depth is not None:
        depth = check_int("depth", cfg.depth, 2)
        if len(hs) == 1:
            hs = hs * (depth - 1)
        elif len(hs) != depth - 1:
            raise ValueError(f"hidden has {len(hs)} widths, so depth is {len(hs) + 1}; got depth={cfg.depth} "
                             "(give one width with depth=, or the list of widths alone)")
    return hs[0] if len(hs) == 1 else hs


def _fingerprint_widths(cfg: TrainConfig):
    hs = _resolve_widths(cfg)
    return hs if isinstance(hs, int) else list(hs)


def _check_params_shapes(params, hidden, d) -> None:
    sizes = (d,) + ((hidden,) if isinstance(hidden, int) else tuple(hidden)) + (d,)
    want = [(sizes[l + 1], sizes[l]) for l in range(len(sizes) - 1)]
    got = [tuple(w.shape[-2:]) for w in models.weights(params)]
    if got != want:
        names = ", ".join(f"w{l + 1} {s}" for l, s in enumerate(want))
        raise ValueError(f"params must have {names} (hidden widths {sizes[1:-1]}, D = {d}); got "
                         f"{', '.join(f'w{l + 1} {s}' for l, s in enumerate(got))}")


def _check_stability(loop: LoopConfig, data: TrainData, hidden: int, alpha, gamma, eps,
                     eps_j=None, corruption=None) -> bool:
    """The shared GD stability check on the directions the network learns (the top H), with the
    run's eps and gamma, in the paper's units (for "mse": alpha -> 2 alpha / D, gamma -> gamma D / 2).
    Returns whether it warned that the run diverges.
    """
    if not (loop.linear and loop.optimizer is None):
        return False
    n, d = data.x.shape
    f = rate_factor(loop.loss_scale, d)
    col = lambda a: np.asarray(a, np.float64)[..., None]  # batch axes first, directions last
    lam = np.maximum(np.asarray(data.eigvals[:hidden], np.float64), 0.0)
    # Frames: core check -> _check_stability -> _run -> train/train_batch -> the user's call.
    eps = col(eps) if eps_j is None else eps_j  # a corruption: its diagonal eps_j per direction
    edge = _linear.check_gd_stability(lam, eps, col(gamma) / f, col(alpha) * f, n, stacklevel=4)
    if np.any(~(np.asarray(edge) < 2)):
        return True
    if eps_j is not None and corruption is not None and not np.any(~(np.asarray(edge) < 2)):
        # a coupled term (masking, a covariance): the Hessian of the coupled loss (_linear._coupled)
        corruption_lib.check_coupled(corruption, data, hidden, np.asarray(alpha, np.float64) * f,
                                     epochs=loop.epochs, stacklevel=5)
    return False


def _check_pieces(starts, loop: LoopConfig, data: TrainData, hidden: int, alpha, gamma, eps, eps_j,
                  corruption) -> bool:
    """:func:`_check_stability` piece by piece: the rates in force together from each epoch in
    ``starts``; one warning, for the worst piece (the largest alpha * h_max at its fixed point), naming
    the epoch it starts at. Each rate at its own largest value is not the strictest: more weight decay
    lowers the curvature."""
    import warnings

    from daedyn.schedules import is_schedule

    at = lambda x, t: np.asarray(x(jnp.asarray(float(t))), np.float64) if is_schedule(x) else x  # noqa: E731
    n, d = data.x.shape
    f = rate_factor(loop.loss_scale, d)
    lam = np.maximum(np.asarray(data.eigvals[:hidden], np.float64), 0.0)
    col = lambda a: np.asarray(a, np.float64)[..., None]  # noqa: E731
    worst = None
    for t in starts:
        a, g, e = at(alpha, t), at(gamma, t), at(eps, t)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warned = _check_stability(loop, data, hidden, a, g, e, eps_j, corruption)
        e_dir = col(e) if eps_j is None else eps_j
        edge = float(np.max(col(a) * f * _linear.max_hessian_eigenvalue(lam, e_dir, col(g) / f, n)))
        rank = (bool(warned or caught), edge)
        if worst is None or rank > worst[0]:
            worst = (rank, t, caught, warned)
    for w in worst[2]:
        warnings.warn(f"with the rates in force from epoch {worst[1]} (the worst of the {len(starts)} pieces "
                      f"of the schedules): {w.message}", w.category, stacklevel=4)
    return worst[3]


def _check_key(key) -> None:
    """``key`` must be a PRNG key (``jax.random.key(0)``) or raw key data (``jax.random.PRNGKey(0)``):
    ``ValueError`` naming it otherwise (an integer seed, a float array)."""
    if isinstance(key, jax.core.Tracer):
        return
    dtype = getattr(key, "dtype", None)
    if dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key):
        return
    a = np.asarray(key) if dtype is None or not isinstance(key, jax.Array) else key
    if a.dtype == np.uint32 and a.ndim >= 1 and a.shape[-1] in (2, 4):
        return
    what = (f"{type(key).__name__} {key!r}" if a.ndim == 0
            else f"an array of dtype {a.dtype} and shape {a.shape}")
    raise ValueError(f"key must be a JAX PRNG key, e.g. jax.random.key(0) (or jax.random.PRNGKey(0)); "
                     f"got {what}")


def _warn_diverged(name: str, result: TrainResult, stacklevel: int) -> None:
    """:class:`UnstableStepWarning` when a run's final weights or recorded training loss are NaN or
    inf: the run diverged, which the caller must hear about (as the CLI reports it). The mapping is
    not looked at: a nonlinear network's estimate is 0/0 along directions with lam = 0."""
    import warnings

    from daedyn._linear import UnstableStepWarning

    checks = [("final weights", leaf) for leaf in jax.tree_util.tree_leaves(result.params)]
    if result.train_loss is not None:
        checks.append(("training loss", result.train_loss))
    for what, values in checks:
        bad = ~np.isfinite(np.asarray(values))
        if bad.any():
            warnings.warn(f"{name}: {int(bad.sum())} of {bad.size} value(s) of the {what} are NaN or inf: "
                          f"the run diverged (lower alpha or the noise level, or compute in float64)",
                          UnstableStepWarning, stacklevel=stacklevel)
            return


def _run(x, cfg: TrainConfig, *, key, alpha, gamma, noise, spectrum, x_heldout, params, start_epoch,
         progress, checkpoint, batched, log=None, eps=None, name=None) -> TrainResult:
    _check_key(key)
    if checkpoint is not None:  # before any work: a run must not end in a folder it cannot write
        _checkpoint.check_writable("checkpoint", checkpoint)
    hidden = _resolve_widths(cfg)  # an int (depth 2) or a tuple of widths (deep)
    # alpha / gamma schedules (train/_schedule.py): their largest pieces stand in for the checks
    alpha_c, gamma_c = _schedule.driver_rates(alpha, gamma, batched=batched, checkpoint=checkpoint,
                                              optimizer=cfg.optimizer, epochs=int(start_epoch) + cfg.epochs)
    check_range("alpha", alpha_c, 0.0, lo_open=True)
    check_range("gamma", gamma_c, 0.0)
    check_range("init_scale", cfg.init_scale, 0.0)
    check_range("start_epoch", start_epoch, 0)
    noise = noise_lib.as_noise(noise)
    corruption = noise if corruption_lib.is_corruption(noise) else None
    if eps is not None:  # an eps schedule (train/_schedule.py): Gaussian kind, eps(k) at epoch k
        noise = _schedule.driver_eps(eps, noise, batched=batched, checkpoint=checkpoint)
    check_range("noise variance", 0.0 if noise is None or corruption is not None else noise.variance, 0.0)
    if cfg.marginalised and noise is None:
        raise ValueError("marginalised=True needs a noise model (e.g. daedyn.noise.gaussian(sigma2)) "
                         "whose variance enters the expected loss")
    loop = loop_config(epochs=cfg.epochs, save_every=cfg.save_every, activation=cfg.activation,
                       noise=noise, marginalised=cfg.marginalised, loss_scale=cfg.loss_scale, path=cfg.path,
                       batch_size=cfg.batch_size, optimizer=cfg.optimizer, precision=cfg.precision,
                       observables=cfg.observables, remat=False, bias=cfg.bias)
    if loop.batch_size is not None and loop.batch_size > np.shape(x)[0]:
        raise ValueError(f"batch_size must be <= N = {np.shape(x)[0]}; got {cfg.batch_size}")
    data = prepare_data(x, spectrum=spectrum, x_heldout=x_heldout, linear=loop.linear, path=loop.path,
                        dtype=cfg.dtype)
    dt = data.x.dtype
    n, d = data.x.shape
    # the one variance -> eps conversion; a corruption's term is formed in the loop (eps stays 0)
    if eps is None:
        eps = jnp.asarray(noise_lib.eps_of(None if corruption else noise, n), dt)
    else:
        eps = _schedule.cast(eps, dt)
    eps_j = None
    if corruption is not None and loop.linear and loop.optimizer is None and isinstance(hidden, int):
        eps_j = corruption_lib.stability_eps(corruption, data, hidden)
    warned = False
    if isinstance(hidden, int):  # the GD stability check is for depth 2 (supplement D's Hessian)
        starts = change_steps(int(start_epoch), int(start_epoch) + cfg.epochs, alpha, gamma, eps)
        if starts is None or len(starts) == 1:
            warned = _check_stability(loop, data, hidden, alpha_c, gamma_c, _schedule.stability_eps(eps),
                                      eps_j, corruption)
        else:
            warned = _check_pieces(starts, loop, data, hidden, alpha, gamma, eps, eps_j, corruption)

    key_shape = _key_batch_shape(key)
    shape, size = (), 1
    if batched:
        extra = () if corruption is None else corruption_lib.batch_shape(corruption)
        shape = tuple(np.broadcast_shapes(_schedule.batch_shape(alpha), _schedule.batch_shape(gamma),
                                          _schedule.batch_shape(eps),
                                          key_shape, extra))
        size = int(np.prod(shape)) if shape else 1
        if key_shape == ():
            key = jr.split(key, size)
        elif tuple(key_shape) == shape:
            key = key.reshape(size, *key.shape[len(shape):])
        else:
            raise ValueError(f"a batch of keys must have the batch shape {shape} of alpha/gamma/noise; "
                             f"got {tuple(key_shape)}")
    elif key_shape != ():
        raise ValueError(f"key must be a single PRNG key for train(); got a batch of shape {key_shape} "
                         "(use train_batch)")
    as_dt = lambda v: _schedule.cast(v, dt) if _schedule.is_schedule(v) else jnp.asarray(v, dt)
    hyper = Hyper(as_dt(alpha), as_dt(gamma), eps, corruption)
    if batched:
        flat = lambda a: _schedule.flatten_any(a, shape, size)  # schedules: one per run
        hyper = Hyper(flat(hyper.alpha), flat(hyper.gamma), flat(hyper.eps),
                      None if corruption is None
                      else _schedule.flatten_corruption(corruption, shape, size, dt))
    if params is not None:
        params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, dt), params)
        _check_params_shapes(params, hidden, d)
    n_total = loop.epochs // loop.save_every
    if cfg.chunk_records:
        chunk = max(1, min(int(cfg.chunk_records), n_total))
    else:  # checkpoints are written (and records logged) between chunks: about ten per run by default
        chunk = max(1, -(-n_total // 10)) if (checkpoint is not None or log is not None) else n_total
    fns = _compiled(loop, batched, hidden, bool(cfg.bias))
    scale = jnp.asarray(cfg.init_scale, dt)
    start = jnp.asarray(start_epoch, jnp.int32)
    end = int(start_epoch) + loop.epochs
    axis = 1 if batched else 0  # the record axis
    log_shape = shape if batched else None
    if chunk == n_total and checkpoint is None:  # one compiled call: train_fn's run
        starting(progress, int(start_epoch), end)
        recs, final, p0 = fns.whole(key, params, scale, data, hyper, start)
        recs = {k: np.asarray(v) for k, v in recs.items()}
        _log.emit(log, recs, int(start_epoch), loop.save_every, axis=axis, shape=log_shape)
        if progress is not None:
            progress(end, end)
    else:
        carry, first, p0, k_run = fns.begin(key, params, scale, data, hyper, start)
        parts = [{k: np.expand_dims(np.asarray(v), axis) for k, v in first.items()}]
        done = 0
        if checkpoint is not None:
            fp = _fingerprint(loop, cfg, start_epoch=start_epoch, batched=batched, data=data,
                              hyper=hyper, key=key, params=params)
            leaves, treedef = jax.tree_util.tree_flatten(carry)
            saved = _checkpoint.load(checkpoint, fp, len(leaves))
            if saved is not None:  # resume: the state after `done` records, and those records
                carry = jax.tree_util.tree_unflatten(
                    treedef, [jnp.asarray(v, dtype=leaf.dtype) for v, leaf in zip(saved.state_leaves,
                                                                                  leaves, strict=True)])
                parts, done = [saved.records], saved.done
        at = int(start_epoch) + done * loop.save_every
        starting(progress, at, end, note=f"resumed at epoch {at} of {end}" if done else "")
        if not done:  # the starting point (a resumed run logged it before)
            _log.emit(log, parts[0], int(start_epoch), loop.save_every, axis=axis, shape=log_shape)
        while done < n_total:
            m = min(chunk, n_total - done)
            carry, new = fns.advance(m)(carry, data, hyper, k_run)
            parts.append({k: np.asarray(v) for k, v in new.items()})  # waits for the chunk
            _log.emit(log, parts[-1], int(start_epoch) + (done + 1) * loop.save_every, loop.save_every,
                      axis=axis, shape=log_shape)
            done += m
            if checkpoint is not None:
                parts = [{k: np.concatenate([p[k] for p in parts], axis=axis) for k in parts[0]}]
                _checkpoint.save(checkpoint, carry, parts[0], done, fp)
            if progress is not None:
                progress(int(start_epoch) + done * loop.save_every, end)
        final = fns.finish(carry, data)
        recs = {k: np.concatenate([p[k] for p in parts], axis=axis) for k in parts[0]}
    result = _result(recs, final, p0, data, loop, alpha=alpha, gamma=gamma, eps=eps,
                     start_epoch=int(start_epoch), shape=shape if batched else None)
    if name is not None and not warned:  # frames: _warn_diverged -> _run -> train -> the caller
        _warn_diverged(name, result, stacklevel=4)
    return result


def _result(recs, final, p0, data: TrainData, loop: LoopConfig, *, alpha, gamma, eps, start_epoch,
            shape) -> TrainResult:
    """Assemble a :class:`TrainResult` (batch axes restored when ``shape`` is not None)."""
    n, d = data.x.shape
    np_dt = np.dtype(data.x.dtype)
    recs = {k: jnp.asarray(v) for k, v in recs.items()}
    epochs = jnp.asarray(np.arange(loop.epochs // loop.save_every + 1) * loop.save_every + start_epoch)
    rf = rate_factor(loop.loss_scale, d)
    # alpha / gamma schedules give piecewise-constant tau / gamma schedules (train/_schedule.in_units)
    tau = _schedule.in_units(alpha, lambda a: jnp.asarray(np.asarray(n / (np.asarray(a, np.float64) * rf),
                                                                      np_dt)),
                             c=jnp.asarray(n / rf, np_dt), inverse=True)  # continuous: N / (alpha(t) rf)
    # in the paper's units, like tau: "mse" decays gamma ||W||^2 / 2 against a data term 2 / D times
    # the paper's, i.e. gamma D / 2 in paper units (rate_factor is the 2 / D of the step)
    gamma = _schedule.in_units(gamma, lambda g: jnp.asarray(np.asarray(np.asarray(g, np.float64) / rf,
                                                                       np_dt)), c=jnp.asarray(1 / rf, np_dt))
    if shape is not None:
        unflat = lambda a: a.reshape(*shape, *a.shape[1:])
        recs = {k: unflat(v) for k, v in recs.items()}
        final, p0 = (jax.tree_util.tree_map(unflat, p) for p in (final, p0))
        tau, gamma = (_schedule.broadcast_runs(a, shape) for a in (tau, gamma))
        eps = eps if _schedule.is_schedule(eps) else jnp.broadcast_to(eps, shape)  # a schedule: as given
    return TrainResult(
        t=epochs, mapping=recs.get("mapping"), singular_values=recs.get("singular_values"),
        weight_norm=recs.get("weight_norm"), train_loss=recs.get("train_loss"),
        heldout_loss=recs.get("heldout_loss"), params=final, init_params=p0, eigvals=data.eigvals,
        n=int(n), tau=tau, eps=eps, gamma=gamma)


def _fingerprint(loop: LoopConfig, cfg: TrainConfig, *, start_epoch, batched, data, hyper, key,
                 params) -> str:
    """What makes two driver runs the same run (for resuming from a checkpoint)."""
    name = lambda f: f if f is None or isinstance(f, str) else getattr(f, "__qualname__", repr(f))
    settings = dict(
        epochs=loop.epochs, save_every=loop.save_every, activation=name(loop.activation),
        noise=None if loop.noise is None else loop.noise[0], marginalised=loop.marginalised,
        loss_scale=loop.loss_scale, path=loop.path, batch_size=loop.batch_size,
        optimizer=None if loop.optimizer is None else name(type(loop.optimizer)),
        precision=str(loop.precision), observables=list(loop.observables), hidden=_fingerprint_widths(cfg),
        bias=bool(cfg.bias), init_scale=float(cfg.init_scale), start_epoch=int(start_epoch),
        batched=bool(batched))
    arrays = dict(x=data.x, eigvals=data.eigvals, x_heldout=data.x_heldout,
                  sigma_heldout_eig=data.sigma_heldout_eig, alpha=hyper.alpha, gamma=hyper.gamma,
                  eps=hyper.eps, key=key)
    if hyper.corruption is not None:  # its kind is in loop.noise; its parameters (p, cov) here
        arrays.update({f"corruption_{i}": leaf for i, leaf in
                       enumerate(jax.tree_util.tree_leaves(hyper.corruption))})
    if params is not None:
        arrays.update({f"params_{k}": v for k, v in params.items()})
    return _checkpoint.fingerprint(settings, arrays)
