"""The types of a tuning objective: one frozen config per route (static) and the traced hyperparameters.

A route config is hashable by value, so two objectives with equal structure share compilations;
everything a user may tune, sweep or vmap lives in :class:`Hyperparams` and is traced.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal, NamedTuple

import jax.numpy as jnp
from jax.typing import ArrayLike

from daedyn._checks import check_int, check_precision

__all__ = ["Hyperparams", "ClosedFormRoute", "DynamicsRoute", "TrainRoute", "Route", "ROUTES", "TUNABLE",
           "as_hyperparams"]

ROUTES = ("closed_form", "dynamics", "train")
TUNABLE = ("eps", "gamma", "alpha", "epochs")
INITS = ("balanced", "orthogonal", "random")


class Hyperparams(NamedTuple):
    """Traced hyperparameters of a held-out objective (every leaf may be a tracer).

    Attributes:
      eps: training noise level N s^2, >= 0; a scalar, or (D,) for per-direction noise eps_j
        (routes "closed_form" and "dynamics").
      alpha: learning rate, > 0 (tau = N / alpha).
      gamma: weight decay, >= 0.
      w0: initial per-direction mapping of routes "closed_form" and "dynamics" (balanced or
        orthogonal start), in (0, 1); scalar or (D,).
      eps_eval: noise level of the held-out inputs, M s_eval^2 (M held-out samples, s_eval^2 the
        per-component variance), >= 0.
      epochs: training time T in epochs, > 0, on route "closed_form"; ``None`` on routes
        "dynamics" and "train", whose (whole) number of steps is static (``DynamicsRoute.epochs``).
    Example:
      >>> Hyperparams(eps=1.0, alpha=0.1)._replace(gamma=0.01).gamma
      0.01
    """

    eps: ArrayLike
    alpha: ArrayLike
    gamma: ArrayLike = 0.0
    w0: ArrayLike = 1e-6
    eps_eval: ArrayLike = 0.0
    epochs: ArrayLike | None = None


def as_hyperparams(hyper: Hyperparams, dtype) -> Hyperparams:
    """Every leaf as a ``dtype`` array (``epochs=None`` stays None): one dtype, one compilation."""
    return Hyperparams(*(None if v is None else jnp.asarray(v, dtype) for v in hyper))


@dataclasses.dataclass(frozen=True)
class ClosedFormRoute:
    """Route 1: w_j(T) from the balanced small-initialisation solution (``daedyn.theory``).

    Attributes:
      hidden: number of hidden units H (directions j >= H stay 0); None means H = D.
      depth: number of weight matrices L >= 2 (the depth-L closed form, docs/depth.md; w0 is then
        the initial mapping, every factor w0^(1/L)).
    """

    hidden: int | None = None
    depth: int = 2

    def __post_init__(self):
        if self.hidden is not None:
            object.__setattr__(self, "hidden", check_int("hidden", self.hidden, 1))
        object.__setattr__(self, "depth", check_int("depth", self.depth, 2))


@dataclasses.dataclass(frozen=True)
class DynamicsRoute:
    """Route 2: ``epochs`` gradient-descent steps of the expected loss (``daedyn.dynamics``).

    Attributes:
      epochs: number of steps (one step = one epoch), >= 1.
      init: "balanced" (scalar recursion per direction from w1 = w2 = sqrt(w0)), "orthogonal"
        (full-matrix recursion in the eigenbasis from the decoupling start, diagonal sqrt(w0)) or
        "random" (full-matrix recursion from small Gaussian weights).
      hidden: number of hidden units H; None means H = D.
      remat_every: steps per rematerialised block (``jax.checkpoint``) in reverse mode, >= 1.
      precision: matmul precision of the matrix recursion.
      depth: number of weight matrices L >= 2 (docs/depth.md): "balanced" runs the L factor values
        of each direction (``dynamics.scalar_gd(depth=L)``, every factor w0^(1/L)); "orthogonal" /
        "random" run L factor matrices (``orthogonal_init`` / ``random_init`` with a tuple of widths, hidden
        units H in each of the L - 1 hidden layers).
    """

    epochs: int
    init: Literal["balanced", "orthogonal", "random"] = "balanced"
    hidden: int | None = None
    remat_every: int = 100
    precision: Any = None
    depth: int = 2

    def __post_init__(self):
        object.__setattr__(self, "depth", check_int("depth", self.depth, 2))
        object.__setattr__(self, "epochs", check_int("epochs", self.epochs, 1))
        object.__setattr__(self, "remat_every", check_int("remat_every", self.remat_every, 1))
        if self.hidden is not None:
            object.__setattr__(self, "hidden", check_int("hidden", self.hidden, 1))
        if self.init not in INITS:
            raise ValueError(f"init must be 'balanced', 'orthogonal' or 'random'; got {self.init!r}")
        check_precision(self.precision)


@dataclasses.dataclass(frozen=True)
class TrainRoute:
    """Route 3: ``epochs`` epochs of full-batch training of an autoencoder (``daedyn.train``).

    Attributes:
      epochs: number of epochs, >= 1.
      hidden: number of hidden units H; None means H = D.
      marginalised: marginalised noise loss (True, linear networks) or Gaussian noise sampled with
        a fixed key per step (False).
      activation: None for a linear DAE, or an activation name/function (``daedyn.models``).
      remat_every: epochs per rematerialised block in reverse mode, >= 1.
      precision: matmul precision of training and of the held-out loss.
      depth: number of weight matrices L >= 2 (L - 1 hidden layers of H units; docs/depth.md).
    """

    epochs: int
    hidden: int | None = None
    marginalised: bool = True
    activation: Any = None
    remat_every: int = 100
    precision: Any = None
    depth: int = 2

    def __post_init__(self):
        object.__setattr__(self, "depth", check_int("depth", self.depth, 2))
        object.__setattr__(self, "epochs", check_int("epochs", self.epochs, 1))
        object.__setattr__(self, "remat_every", check_int("remat_every", self.remat_every, 1))
        object.__setattr__(self, "marginalised", bool(self.marginalised))
        if self.hidden is not None:
            object.__setattr__(self, "hidden", check_int("hidden", self.hidden, 1))
        check_precision(self.precision)


Route = ClosedFormRoute | DynamicsRoute | TrainRoute
