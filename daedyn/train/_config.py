"""The static structure of a training run and its traced hyperparameters.

Two kinds of input, kept apart as in optax and diffrax:

- :class:`Hyper` holds what a user may tune, sweep or vmap (alpha, gamma, eps): traced leaves.
- :class:`TrainConfig` holds the structure of a driver run (sizes, network, loss, options): static,
  hashable, written once and shared by :func:`~daedyn.train.train` and
  :func:`~daedyn.train.train_batch`. :class:`LoopConfig` is the resolved structure of the training
  loop itself (path chosen, noise sampler fixed, observables filtered): one compiled loop per value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple

import jax.numpy as jnp
import numpy as np
import optax
from jax import Array
from jax.typing import ArrayLike

from daedyn import models
from daedyn import noise as noise_lib
from daedyn._checks import check_int, check_precision, check_range
from daedyn.train import _corruption as corruption_lib

__all__ = ["OBSERVABLES", "Params", "Hyper", "TrainConfig", "LoopConfig", "loop_config",
           "normaliser", "rate_factor"]

OBSERVABLES = ("mapping", "singular_values", "weight_norm", "train_loss", "heldout_loss")
PATHS = ("auto", "eigen", "sigma", "data")
Params = dict[str, Array]


class Hyper(NamedTuple):
    """Traced hyperparameters of a run (scalars, or arrays with a batch axis under ``vmap``).

    Attributes:
      alpha: learning rate (> 0); passed to the optimiser factory (default ``optax.sgd``).
      gamma: weight decay (>= 0), the (gamma / 2)(||W1||^2 + ||W2||^2) term of Eq. (6).
      eps: noise level eps = N s^2 (>= 0), N the number of training samples and s^2 the
        per-component noise variance: it enters the marginalised loss as the corruption term
        tr(W eps I W^T) / (2N), and sampled noise is drawn with variance eps / N (reparameterised).
      corruption: None, or a corruption object from :mod:`daedyn.noise` (``masking``,
        ``salt_and_pepper``, ``gaussian_covariance``) whose parameters are traced leaves: sampled
        with ``corrupt(key, x)``, or, when marginalised, its term C takes eps's place as C + eps I
        (docs/corruption.md). Its parameters may be schedules: epoch k uses ``corruption.at(k)``.
      mean_scale: s in E[x~] = s x, so the target-input moment of the marginalised loss is
        K = s Sigma: None (s = 1, every unbiased corruption), or 1 - p for raw masking, set when the
        loop turns a corruption into its term (docs/architecture.md, "One quadratic core").
    Any of alpha, gamma and eps may be a :mod:`daedyn.schedules` schedule: epoch k uses its value at k.
    """

    alpha: ArrayLike
    gamma: ArrayLike = 0.0
    eps: ArrayLike = 0.0
    corruption: Any = None
    mean_scale: ArrayLike | None = None


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Static structure of a training run: everything but the data, keys and traced settings.

    :func:`~daedyn.train.train` and :func:`~daedyn.train.train_batch` take these fields as keywords
    (or a whole ``config=``); a frozen config is hashable and can be reused across calls. Values are
    validated when a run starts (``ValueError`` naming the field).

    Attributes:
      hidden: hidden units H (>= 1), or a list of widths (H_1, ..., H_{L-1}) for a deep network of L
        weight matrices (docs/depth.md).
      depth: number of weight matrices L (>= 2) with one width ``hidden`` repeated (None: from
        ``hidden``).
      epochs: number of epochs (>= 0, a multiple of ``save_every``).
      save_every: epochs between records (the start is always recorded); default (None) the largest
        divisor of ``epochs`` up to min(100, epochs), as ``daedyn train`` (100 for 1000 epochs, 10 for
        10).
      activation: None/"linear", a ``jax.nn`` name ("relu", "tanh", ...) or a callable.
      marginalised: train a linear network on the expected loss over the noise.
      loss_scale: "paper" (1/(2B) sum of squared errors; tau = N / alpha) or "mse" (mean over the
        B x D entries, Figure 6; tau = N D / (2 alpha)).
      path: "auto", "eigen", "sigma" or "data" (see :func:`~daedyn.train.train_fn`).
      batch_size: minibatch size (None: full batch).
      optimizer: None (gradient descent ``optax.sgd(alpha)``), a callable alpha -> optax
        transformation, or a fixed ``optax.GradientTransformation``.
      precision: matmul precision ("highest" for comparisons with theory on GPUs).
      observables: subset of :data:`OBSERVABLES` to record (None: all that apply).
      bias: add biases (off in the paper).
      init_scale: std of the initial weights (1e-4 in Figure 5, 1e-3 in Figure 6).
      chunk_records: records per compiled chunk (None: all in one, or about ten with a checkpoint).
      dtype: floating dtype (None: that of the data).
    Example:
      >>> from daedyn import train
      >>> cfg = train.TrainConfig(hidden=3, epochs=200, save_every=100)
      >>> cfg.replace(activation="relu").activation
      'relu'
    """

    hidden: int | tuple[int, ...]
    epochs: int
    save_every: int | None = None
    activation: models.Activation = None
    marginalised: bool = False
    loss_scale: Literal["paper", "mse"] = "paper"
    path: Literal["auto", "eigen", "sigma", "data"] = "auto"
    batch_size: int | None = None
    optimizer: optax.GradientTransformation | Callable[[Array], Any] | None = None
    precision: Any = None
    observables: Sequence[str] | None = None
    bias: bool = False
    init_scale: float = 1e-4
    chunk_records: int | None = None
    dtype: Any = None
    depth: int | None = None

    def __post_init__(self):
        e = self.epochs
        if self.save_every is None:  # follows epochs (a bad epochs value is reported when the run starts)
            every = (next(k for k in range(min(100, e), 0, -1) if e % k == 0) if e >= 1 else 1) \
                if isinstance(e, int | np.integer) and not isinstance(e, bool) and e >= 0 else 100
            object.__setattr__(self, "save_every", every)
        if self.observables is not None and not isinstance(self.observables, tuple):
            object.__setattr__(self, "observables", tuple(self.observables))  # keeps the config hashable
        if isinstance(self.hidden, list):
            object.__setattr__(self, "hidden", tuple(self.hidden))

    def replace(self, **changes) -> TrainConfig:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def of(cls, config: TrainConfig | None, options: dict, caller: str) -> TrainConfig:
        """``config`` (or a new one) with the keyword ``options`` of a driver call applied."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - names)
        if unknown:
            raise TypeError(f"{caller}() got unexpected keyword argument(s) {unknown}; its options are "
                            f"the fields of daedyn.train.TrainConfig: {sorted(names)}")
        if config is not None:
            return dataclasses.replace(config, **options)
        missing = [k for k in ("hidden", "epochs") if k not in options]
        if missing:
            raise TypeError(f"{caller}() needs {' and '.join(f'{k}=' for k in missing)} (or config=)")
        return cls(**options)


@dataclasses.dataclass(frozen=True)
class LoopConfig:
    """Resolved static structure of the training loop (one compiled loop per value)."""

    epochs: int
    save_every: int
    activation: Any
    linear: bool
    noise: tuple[str, Callable | None] | None  # (kind, unit sampler) of sampled noise, else None;
    # the sampler is None for a corruption (masking, ...) alone, drawn by Hyper.corruption.corrupt
    marginalised: bool
    loss_scale: str
    path: str
    batch_size: int | None
    optimizer: Any
    precision: Any
    observables: tuple[str, ...]
    remat: bool
    corrupt: bool = False  # sampled inputs are Hyper.corruption.corrupt(key, x) (+ the sampler's
    # additive noise of level eps when noise[1] is not None: a corruption with an eps schedule)


def _resolve_path(path, linear, noise, marginalised, batch_size, optimizer, bias) -> str:
    if path not in PATHS:
        raise ValueError(f"path must be 'auto', 'eigen', 'sigma' or 'data'; got {path!r}")
    moments_ok = linear and (noise is None or marginalised) and batch_size is None and not bias
    if path == "auto":
        if not moments_ok:
            return "data"
        return "eigen" if optimizer is None else "sigma"
    if path != "data" and not moments_ok:
        raise ValueError(f"path={path!r} needs a linear network without biases trained full-batch "
                         "without sampled noise (noise=None or marginalised=True); use path='data'")
    return path


def loop_config(*, epochs, save_every, activation=None, noise=None, marginalised=False,
                loss_scale="paper", path="auto", batch_size=None, optimizer=None, precision=None,
                observables=None, remat=True, bias=False) -> LoopConfig:
    """Validate the options of a training loop and resolve them into a :class:`LoopConfig`.

    Raises:
      ValueError: naming the offending option.
    """
    check_range("epochs", epochs, 0)
    check_range("save_every", save_every, 1)
    if int(epochs) % int(save_every):
        raise ValueError(f"epochs ({epochs}) must be a multiple of save_every ({save_every})")
    if loss_scale not in ("paper", "mse"):
        raise ValueError(f"loss_scale must be 'paper' or 'mse'; got {loss_scale!r}")
    models.get_activation(activation)  # validates the name
    linear = models.is_linear(activation)
    combined = noise if isinstance(noise, corruption_lib.WithAdditive) else None
    if combined is not None:  # a corruption and an eps schedule
        noise = combined.corruption
    # a value that scores its own reconstructions (daedyn.diffusion's denoising objective): sampled
    # through Hyper.corruption like a corruption, never marginalised
    scored = callable(getattr(noise, "squared_error", None))
    if scored and marginalised:
        raise ValueError(f"noise {noise.kind!r} is sampled only: use marginalised=False")
    noise = noise if scored else noise_lib.as_noise(noise)
    corruption_lib.check_route(noise, marginalised, epochs=epochs)
    if marginalised and not linear:
        raise ValueError("marginalised=True needs a linear network (activation=None): the expected "
                         "loss over noise has a closed form only for linear maps")
    if batch_size is not None:
        check_range("batch_size", batch_size, 1)
        batch_size = check_int("batch_size", int(batch_size), 1)
    if optimizer is not None and not (isinstance(optimizer, optax.GradientTransformation)
                                      or callable(optimizer)):
        raise ValueError("optimizer must be an optax.GradientTransformation or a callable "
                         "learning_rate -> GradientTransformation")
    check_precision(precision)
    path = _resolve_path(path, linear, noise, marginalised, batch_size, optimizer, bias)
    observables = OBSERVABLES if observables is None else tuple(observables)
    bad = set(observables) - set(OBSERVABLES)
    if bad:
        raise ValueError(f"observables must be among {OBSERVABLES}; got {sorted(bad)}")
    if not linear:
        observables = tuple(o for o in observables if o != "singular_values")
    # The marginalised loss needs only eps (traced): runs with any noise kind share one compilation.
    corrupt = (corruption_lib.is_corruption(noise) or scored) and not marginalised
    if noise is None or marginalised:
        spec = None
    elif corrupt:
        spec = (noise.kind, None) if combined is None else (combined.kind, combined.additive.unit_sampler)
    else:
        spec = (noise.kind, noise.unit_sampler)
    return LoopConfig(epochs=int(epochs), save_every=int(save_every), activation=activation,
                      linear=linear, noise=spec, marginalised=bool(marginalised), loss_scale=loss_scale,
                      path=path, batch_size=batch_size, optimizer=optimizer, precision=precision,
                      observables=observables, remat=bool(remat), corrupt=bool(corrupt))


def rate_factor(loss_scale: str, d: int) -> float:
    """The factor turning alpha into the paper's rate: 1 ("paper") or 2 / D ("mse")."""
    return 1.0 if loss_scale == "paper" else 2.0 / d


def normaliser(loss_scale: str, count, d: int, dtype) -> Array:
    """n in L = (sum of squared errors + corruption) / (2n) + ...: B ("paper") or B D / 2 ("mse")."""
    count = jnp.asarray(count, dtype)
    return count if loss_scale == "paper" else count * jnp.asarray(d / 2, dtype)
