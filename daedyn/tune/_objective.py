"""Held-out objectives of a linear DAE trained for T epochs, by three differentiable routes.

Objective (denoising loss on held-out data, in the authors' scaling):

    J = 1/(2M) sum_j (1 - w_j(T))^2 p_j + (s_eval^2 / 2) sum_j w_j(T)^2,

for a model whose map is W = V diag(w) V^T (V the train eigenvectors), p_j = [V^T X_ho^T X_ho V]_jj
and s_eval^2 the per-component variance of the noise on the held-out inputs. It is the expected loss
1/(2M) sum_i E ||x_i - W (x_i + e_i)||^2 on the held-out set, i.e. the loss of the contract with
eps_eval = M s_eval^2. With s_eval^2 = 0 (clean reconstruction) it is minimised by the identity
map, so eps -> 0 and T -> infinity are optimal; an interior optimum in eps needs s_eval^2 > 0.
"""

from __future__ import annotations

import dataclasses
import functools as ft
from typing import Any, Literal

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from daedyn import theory
from daedyn._checks import check_range
from daedyn.tune._problem import HeldoutProblem, problem_from_spectrum  # noqa: F401 (doctests)

__all__ = ["ROUTES", "TUNABLE", "heldout_loss", "heldout_objective", "time_to_loss", "train_init_w0"]

ROUTES = ("closed_form", "dynamics", "train")
TUNABLE = ("eps", "gamma", "alpha", "epochs")
Route = Literal["closed_form", "dynamics", "train"]


def heldout_loss(mapping: ArrayLike, projected: ArrayLike, n_heldout: ArrayLike,
                 eval_sigma2: ArrayLike = 0.0) -> Array:
    """Held-out denoising loss of the map V diag(mapping) V^T.

    J = 1/(2 n_heldout) sum_j (1 - w_j)^2 p_j + (eval_sigma2 / 2) sum_j w_j^2 over the last axis.
    The first term is ``daedyn.theory.predicted_loss`` for the held-out set (the paper's expected
    loss (1) without noise, evaluated on held-out data); the second is the noise term of (1) with the
    evaluation noise variance.

    Args:
      mapping: (..., D) per-direction mapping w_j.
      projected: (D,) held-out projections p_j = [V^T X_ho^T X_ho V]_jj, >= 0.
      n_heldout: number M of held-out samples, > 0.
      eval_sigma2: per-component variance of the noise on the held-out inputs, >= 0.
    Returns:
      (...,) the loss.
    Example:
      >>> float(heldout_loss(jnp.array([1.0, 0.0]), jnp.array([2.0, 4.0]), 2))  # 1/4 * 4
      1.0
    """
    w = jnp.asarray(mapping)
    dt = jnp.result_type(w, float)
    w = w.astype(dt)
    p = jnp.asarray(projected, dt)
    recon = jnp.sum((1 - w) ** 2 * p, axis=-1) / (2 * jnp.asarray(n_heldout, dt))
    return recon + jnp.asarray(eval_sigma2, dt) / 2 * jnp.sum(w * w, axis=-1)


# --- routes ----------------------------------------------------------------------------------------

def _hidden_mask(d: int, hidden: int | None, dtype) -> Array:
    if hidden is None or hidden >= d:
        return jnp.ones((d,), dtype)
    return (jnp.arange(d) < hidden).astype(dtype)


def _closed_form_mapping(data, h, *, hidden):
    """Route 1: the balanced small-initialisation solution per direction (daedyn.theory)."""
    lam = data["eigvals"]
    tau = data["n"] / h["alpha"]
    w = theory.small_init_trajectory(h["epochs"], lam, h["eps"], h["gamma"], w0=h["w0"], tau=tau,
                                     n=data["n"])
    return w * _hidden_mask(lam.shape[-1], hidden, lam.dtype)


@dataclasses.dataclass(frozen=True)
class _Evaluate:
    """The static part of an objective (hashable by value, so equal settings share compilations)."""

    route: str
    hidden: int | None
    epochs: int
    init: str
    checkpoint_every: int
    options: tuple

    def __call__(self, data: dict, defaults: dict, hyper: dict) -> Array:
        unknown = set(hyper) - set(TUNABLE)
        if unknown:
            raise ValueError(f"unknown hyperparameter(s) {sorted(unknown)}; tunable: {TUNABLE}")
        if self.route != "closed_form" and "epochs" in hyper:
            raise ValueError(f"epochs can only be tuned on route 'closed_form' (route {self.route!r} "
                             "runs a whole number of gradient steps)")
        dt = data["eigvals"].dtype
        h = {k: jnp.asarray(v, dt) for k, v in {**defaults, **hyper}.items()}
        if self.route == "closed_form":
            w = _closed_form_mapping(data, h, hidden=self.hidden)
        else:
            from daedyn.tune import _routes

            if self.route == "dynamics":
                w = _routes.dynamics_mapping(data, h, hidden=self.hidden, epochs=self.epochs,
                                             init=self.init, checkpoint_every=self.checkpoint_every,
                                             options=dict(self.options))
            else:
                return _routes.train_objective(data, h, hidden=self.hidden, epochs=self.epochs,
                                               checkpoint_every=self.checkpoint_every,
                                               options=dict(self.options))
        return heldout_loss(w, data["projected"], data["n_heldout"], h["eval_sigma2"])


def heldout_objective(problem: HeldoutProblem, *, epochs: ArrayLike, alpha: ArrayLike,
                      route: Route = "closed_form", eps: ArrayLike = 0.0, gamma: ArrayLike = 0.0,
                      eval_sigma2: ArrayLike = 0.0, hidden: int | None = None, w0: ArrayLike = 1e-6,
                      init: Literal["balanced", "orthogonal", "random"] = "balanced",
                      key: Array | None = None, init_scale: float = 1e-4, marginalised: bool = True,
                      activation: Any = None, checkpoint_every: int = 100,
                      precision: Any = None) -> jtu.Partial:
    """Held-out loss after ``epochs`` epochs of training with noise level ``eps``, as a pure function.

    Returns ``objective(hyper) -> scalar``: ``hyper`` is a dict with any of ``"eps"`` (scalar, or
    (D,) for per-direction noise), ``"gamma"``, ``"alpha"`` and (route "closed_form" only)
    ``"epochs"``; missing keys take the values given here. The objective is a ``jax.tree_util.Partial``
    whose leaves are the problem's arrays, so ``jax.jit``/``jax.grad``/``jax.vmap`` apply and the data
    is not baked into compiled code as constants.

    Routes (all differentiable in eps, gamma, alpha):
      ``"closed_form"``: w_j(T) from the balanced small-initialisation solution of
        tau dw/dt = 2 w (lam - n gamma - w (lam + eps)) (Eq. (7) generalised, daedyn.theory), with
        start w0, tau = N / alpha; directions j >= hidden are 0. Exact for the continuous flow.
      ``"dynamics"``: ``epochs`` steps of gradient descent (rate alpha) on the expected loss through
        daedyn.dynamics, reverse-mode through lax.scan with ``jax.checkpoint`` every
        ``checkpoint_every`` steps. ``init="balanced"`` runs the scalar recursion per direction from
        w1 = w2 = sqrt(w0); ``init="orthogonal"`` runs the full-matrix recursion in the eigenbasis.
      ``"train"``: ``epochs`` steps of full-batch training of an actual autoencoder on the data
        (daedyn.train.train_fn, init from ``key`` with ``init_scale``), marginalised noise loss by
        default or sampled noise with a fixed key per step (``marginalised=False``); the loss is
        evaluated on the held-out data with the learned map (not the per-direction approximation).

    Args:
      problem: train spectrum and held-out projections (:func:`heldout_problem`).
      epochs: training time T in epochs, > 0 (a positive integer on routes "dynamics" and "train").
      alpha: learning rate, > 0 (tau = N / alpha).
      route: which route computes w_j(T).
      eps: default noise level N s^2, >= 0; scalar or (D,).
      gamma: default weight decay, >= 0.
      eval_sigma2: per-component variance of the noise on held-out inputs, >= 0 (see module doc).
      hidden: number of hidden units H (1 <= H <= D); None means H = D.
      w0: initial per-direction mapping for routes "closed_form" and "dynamics", in (0, 1).
      init: initialisation of route "dynamics".
      key: PRNG key of the initial weights (route "train", and init="random").
      init_scale: scale of the initial weights on route "train".
      marginalised: route "train": marginalised noise term (True) or sampled noise (False).
      activation: route "train": None for a linear DAE, or an activation name/function.
      checkpoint_every: steps per rematerialised block on routes "dynamics" and "train", >= 1.
      precision: matmul precision on routes "dynamics" and "train".
    Returns:
      The objective function.
    Raises:
      ValueError: for an unknown route, out-of-range values, or a problem without the data that
        route "train" needs.
    Example:
      >>> p = problem_from_spectrum([4.0, 1.0], [2.0, 0.5], n=10, n_heldout=5)
      >>> f = heldout_objective(p, epochs=1e4, alpha=0.1, eval_sigma2=0.1)
      >>> bool(f({"eps": 1.0}) < f({"eps": 100.0}))
      True
    """
    if route not in ROUTES:
        raise ValueError(f"route must be one of {ROUTES}; got {route!r}")
    if problem.n_heldout < 1:
        raise ValueError("the held-out set is empty (n_heldout must be >= 1)")
    check_range("epochs", epochs, 0.0, lo_open=True)
    check_range("alpha", alpha, 0.0, lo_open=True)
    check_range("eps", eps, 0.0)
    check_range("gamma", gamma, 0.0)
    check_range("eval_sigma2", eval_sigma2, 0.0)
    check_range("w0", w0, 0.0, 1.0, lo_open=True, hi_open=True)
    check_range("checkpoint_every", checkpoint_every, 1)
    d = int(problem.eigvals.shape[-1])
    if hidden is not None:
        check_range("hidden", hidden, 1, d)
        hidden = int(hidden)
    if init not in ("balanced", "orthogonal", "random"):
        raise ValueError(f"init must be 'balanced', 'orthogonal' or 'random'; got {init!r}")
    if np.ndim(eps) not in (0, 1) or (np.ndim(eps) == 1 and np.shape(eps)[0] != d):
        raise ValueError(f"eps must be a scalar or have shape ({d},); got shape {np.shape(eps)}")
    epochs_static = 0
    if route in ("dynamics", "train"):
        e = float(np.asarray(epochs))
        if e != int(e):
            raise ValueError(f"epochs must be a whole number on route {route!r}; got {e}")
        epochs_static = int(e)
    if route == "train":
        if problem.x_train is None or problem.x_heldout is None:
            raise ValueError("route 'train' needs the data: build the problem with "
                             "heldout_problem(x_train, x_heldout, keep_data=True)")
        if key is None:
            raise ValueError("route 'train' needs key= for the initial weights (and sampled noise)")
        if np.ndim(eps) == 1:
            raise ValueError("per-direction eps is supported on routes 'closed_form' and 'dynamics'")
    if route == "dynamics" and init == "random" and key is None:
        raise ValueError("init='random' needs key=")
    dt = problem.eigvals.dtype
    data = {"eigvals": problem.eigvals, "projected": problem.projected,
            "n": jnp.asarray(problem.n, dt), "n_heldout": jnp.asarray(problem.n_heldout, dt)}
    path = None
    if route == "train":
        from daedyn.tune import _routes

        extra, path = _routes.prepare_train_data(problem, hidden=hidden, key=key, init_scale=init_scale,
                                                 activation=activation, marginalised=marginalised,
                                                 precision=precision)
        data.update(extra, x_heldout=problem.x_heldout)
    elif key is not None:
        data["key"] = key
    defaults = {"eps": jnp.asarray(eps, dt), "gamma": jnp.asarray(gamma, dt),
                "alpha": jnp.asarray(alpha, dt), "epochs": jnp.asarray(epochs, dt),
                "w0": jnp.asarray(w0, dt), "eval_sigma2": jnp.asarray(eval_sigma2, dt)}
    options = (("init_scale", float(init_scale)), ("marginalised", bool(marginalised)),
               ("activation", activation), ("precision", precision),
               ("init", init), ("path", path))
    fn = _Evaluate(route=route, hidden=hidden, epochs=epochs_static, init=init,
                   checkpoint_every=int(checkpoint_every), options=options)
    return jtu.Partial(fn, data, defaults)


def train_init_w0(objective: jtu.Partial) -> Array:
    """Per-direction start w0 (D,) equivalent to a route-"train" objective's initial weights.

    ``daedyn.train.initial_w0(params0, V, kind="balanced")``: pass it as ``w0=`` to route
    "closed_form" to predict the same run from the theory.

    Raises:
      ValueError: if ``objective`` is not a route-"train" objective of :func:`heldout_objective`.
    """
    from daedyn import train

    data = objective.args[0] if isinstance(objective, jtu.Partial) and objective.args else {}
    if not isinstance(data, dict) or "params0" not in data:
        raise ValueError("train_init_w0 needs an objective built with route='train'")
    return train.initial_w0(data["params0"], data["train_data"].eigvecs)


# --- training time to a target loss ----------------------------------------------------------------

def time_to_loss(problem: HeldoutProblem, target: ArrayLike, *, eps: ArrayLike = 0.0,
                 gamma: ArrayLike = 0.0, alpha: ArrayLike, w0: ArrayLike = 1e-6,
                 hidden: int | None = None, on: Literal["train", "heldout"] = "train",
                 t_max: float = 1e9, iterations: int = 80) -> Array:
    """Training time (epochs) at which the clean reconstruction loss first reaches ``target``.

    Uses the closed-form per-direction trajectories (balanced small start, as route "closed_form").
    The loss 1/(2 n_eval) sum_j (1 - w_j(t))^2 p_j decreases monotonically in t there (each w_j rises
    from w0 to its fixed point <= 1), so the time is found by bisection in log t and made
    differentiable by the implicit function theorem: dT/dtheta = -(dL/dtheta) / (dL/dt) at the root.
    ``daedyn.theory.learning_time`` gives the per-direction analogue (time to a fraction of w*).

    Args:
      problem: spectra (``on="train"`` uses p_j = lam_j and n_eval = N).
      target: loss to reach, > 0.
      eps, gamma, alpha, w0, hidden: as in :func:`heldout_objective` (traceable).
      on: which set the loss is measured on.
      t_max: search bracket [1e-6, t_max] epochs.
      iterations: bisection steps (80 halves the log-bracket to below float64 resolution).
    Returns:
      T (scalar, differentiable in eps, gamma, alpha, w0, target); ``inf`` if the target is not
      reached by ``t_max`` (for instance below the loss at the fixed point).
    Example:
      >>> p = problem_from_spectrum([4.0, 1.0], [4.0, 1.0], n=1, n_heldout=1)
      >>> t = time_to_loss(p, 0.3, alpha=1.0)
      >>> bool(jnp.isfinite(t) & (t > 0))
      True
    """
    check_range("target", target, 0.0, lo_open=True)
    check_range("alpha", alpha, 0.0, lo_open=True)
    check_range("eps", eps, 0.0)
    check_range("gamma", gamma, 0.0)
    check_range("t_max", t_max, 1e-6, lo_open=True)
    if on not in ("train", "heldout"):
        raise ValueError(f"on must be 'train' or 'heldout'; got {on!r}")
    lam = problem.eigvals
    dt = lam.dtype
    proj, n_eval = (lam, problem.n) if on == "train" else (problem.projected, problem.n_heldout)
    mask = _hidden_mask(lam.shape[-1], hidden, dt)
    args = tuple(jnp.asarray(a, dt) for a in (eps, gamma, alpha, w0, target))
    return _time_to_loss_impl(lam, proj, jnp.asarray(n_eval, dt), jnp.asarray(problem.n, dt), mask,
                              *args, jnp.asarray(t_max, dt), iterations=int(iterations))


@ft.partial(jax.jit, static_argnames=("iterations",))
def _time_to_loss_impl(lam, proj, n_eval, n, mask, eps, gamma, alpha, w0, target, t_max, *, iterations):
    def loss(t, eps, gamma, alpha, w0, target):
        w = theory.small_init_trajectory(t, lam, eps, gamma, w0=w0, tau=n / alpha, n=n) * mask
        return jnp.sum((1 - w) ** 2 * proj) / (2 * n_eval) - target

    args = (eps, gamma, alpha, w0, target)
    sg = tuple(jax.lax.stop_gradient(a) for a in args)
    lo, hi = jnp.log(jnp.asarray(1e-6, lam.dtype)), jnp.log(t_max)

    def bisect(_, bracket):
        a, b = bracket
        m = (a + b) / 2
        above = loss(jnp.exp(m), *sg) > 0
        return jnp.where(above, m, a), jnp.where(above, b, m)

    _, b = jax.lax.fori_loop(0, iterations, bisect, (lo, hi))
    t_star = jax.lax.stop_gradient(jnp.exp(b))
    reached = loss(jnp.exp(hi), *sg) <= 0
    slope = jax.grad(loss)(t_star, *sg)
    slope_safe = jnp.where(slope < 0, slope, -1.0)  # double where: finite off the taken branch
    # Implicit-function step: value t_star (residual ~ 0), derivative -(dL/dtheta) / (dL/dt).
    residual = loss(t_star, *args)
    t = t_star - (residual - jax.lax.stop_gradient(residual)) / slope_safe
    return jnp.where(reached, t, jnp.inf)
