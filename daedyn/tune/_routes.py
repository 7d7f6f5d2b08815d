"""Routes 1 (closed form, daedyn.theory) and 2 (integrated dynamics, daedyn.dynamics) of the objective.

Each factory takes a :class:`~daedyn.tune.HeldoutProblem` and a frozen route config and returns a
pure function ``objective(hyper: Hyperparams) -> scalar``: a ``jax.tree_util.Partial`` whose
leaves are the problem's arrays (so they are arguments, not compile-time constants, of jitted code)
and whose static part is the route config (hashable by value: equal settings share compilations).

Objective (the held-out denoising loss in the authors' scaling, eps_eval = M s_eval^2):

    J = 1/(2M) [ sum_j (1 - w_j(T))^2 p_j + eps_eval sum_j w_j(T)^2 ],

for the map W = V diag(w) V^T, p_j = [V^T X_ho^T X_ho V]_jj.

Route 2 runs a whole number of gradient steps inside ``lax.scan`` and is differentiated in reverse
mode; memory stays bounded for thousands of steps because every block of ``remat_every`` steps is
wrapped in ``jax.checkpoint`` (only block boundaries are stored; a block is recomputed backwards).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
from jax import Array, lax
from jax.typing import ArrayLike

from daedyn import _linear, dynamics, theory
from daedyn._checks import check_range
from daedyn.tune._config import ClosedFormRoute, DynamicsRoute, Hyperparams, as_hyperparams

__all__ = ["heldout_loss", "closed_form_objective_fn", "dynamics_objective_fn"]


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
    m = jnp.asarray(n_heldout, dt)
    return _loss(w.astype(dt), jnp.asarray(projected, dt), m, m * jnp.asarray(eval_sigma2, dt))


def _loss(w: Array, projected: Array, n_heldout: Array, eps_eval: Array) -> Array:
    """1/(2M) [sum_j (1 - w_j)^2 p_j + eps_eval sum_j w_j^2]: the held-out loss in eps form."""
    recon = jnp.sum((1 - w) ** 2 * projected, axis=-1)
    return (recon + eps_eval * jnp.sum(w * w, axis=-1)) / (2 * n_heldout)


class SpectralData(NamedTuple):
    """The traced data of routes 1 and 2 (leaves of the objective's ``Partial``)."""

    eigvals: Array
    projected: Array
    n: Array
    n_heldout: Array
    key: Array | None = None
    init_scale: Array | None = None


@dataclasses.dataclass(frozen=True)
class Bound:
    """A pure route function with its static config bound: hashable by value, unlike a closure."""

    fn: Callable[..., Array]
    route: Any

    def __call__(self, data, hyper: Hyperparams) -> Array:
        return self.fn(self.route, data, hyper)


def spectral_data(problem, *, key=None, init_scale=None) -> SpectralData:
    """Validate a problem and return its spectra as traced leaves in the problem's dtype."""
    if problem.n_heldout < 1:
        raise ValueError("the held-out set is empty (n_heldout must be >= 1)")
    dt = problem.eigvals.dtype
    return SpectralData(problem.eigvals, problem.projected, jnp.asarray(problem.n, dt),
                        jnp.asarray(problem.n_heldout, dt), key,
                        None if init_scale is None else jnp.asarray(init_scale, dt))


def check_hidden(route, d: int) -> None:
    if route.hidden is not None:
        check_range("hidden", route.hidden, 1, d)


def hidden_mask(d: int, hidden: int | None, dtype) -> Array:
    if hidden is None or hidden >= d:
        return jnp.ones((d,), dtype)
    return (jnp.arange(d) < hidden).astype(dtype)


def _static_epochs(hyper: Hyperparams, route) -> None:
    if hyper.epochs is not None:
        raise ValueError(f"epochs can only be tuned on route 'closed_form' ({type(route).__name__} runs "
                         f"a whole number of gradient steps, epochs={route.epochs} in the route config)")


# --- route 1 ----------------------------------------------------------------------------------------

def closed_form_objective_fn(problem, route: ClosedFormRoute = ClosedFormRoute()) -> jtu.Partial:
    """Held-out loss from the closed-form per-direction solution, as a pure function of hyperparameters.

    w_j(T) is the balanced small-initialisation solution of tau dw/dt = 2 w (lam - n gamma -
    w (lam + eps)) (Eq. (7) generalised, ``daedyn.theory.small_init_trajectory``) from w0, with
    tau = N / alpha; directions j >= hidden are 0. Exact for the continuous gradient flow.

    Args:
      problem: a :class:`~daedyn.tune.HeldoutProblem`.
      route: the static structure (hidden units).
    Returns:
      ``objective(hyper: Hyperparams) -> scalar`` (``hyper.epochs`` required), pure: ``jax.jit``,
      ``jax.grad`` and ``jax.vmap`` apply.
    Raises:
      ValueError: for an empty held-out set or hidden outside [1, D].
    Example:
      >>> from daedyn.tune import Hyperparams, problem_from_spectrum
      >>> f = closed_form_objective_fn(problem_from_spectrum([4.0, 1.0], [2.0, 0.5], n=10, n_heldout=5))
      >>> h = Hyperparams(eps=1.0, alpha=0.1, eps_eval=0.5, epochs=1e4)
      >>> bool(f(h) < f(h._replace(eps=100.0)))
      True
    """
    check_hidden(route, int(problem.eigvals.shape[-1]))
    return jtu.Partial(Bound(_closed_form_loss, route), spectral_data(problem))


def _closed_form_loss(route: ClosedFormRoute, data: SpectralData, hyper: Hyperparams) -> Array:
    if hyper.epochs is None:
        raise ValueError("route 'closed_form' needs the training time: Hyperparams(epochs=...)")
    h = as_hyperparams(hyper, data.eigvals.dtype)
    lam = data.eigvals
    w = theory.small_init_trajectory(h.epochs, lam, h.eps, h.gamma, w0=h.w0, tau=data.n / h.alpha,
                                     n=data.n, depth=route.depth)
    w = w * hidden_mask(lam.shape[-1], route.hidden, lam.dtype)
    return _loss(w, data.projected, data.n_heldout, h.eps_eval)


# --- route 2 ----------------------------------------------------------------------------------------

def dynamics_objective_fn(problem, route: DynamicsRoute, *, key: Array | None = None,
                          init_scale: ArrayLike = 1e-4) -> jtu.Partial:
    """Held-out loss after ``route.epochs`` gradient-descent steps, as a pure function of hyperparameters.

    Gradient descent with rate alpha on the expected loss (one step = one epoch, tau = N / alpha).
    ``init="balanced"``: the exact scalar recursion of ``daedyn.dynamics.scalar_gd`` per direction
    from w1 = w2 = sqrt(w0) (directions j >= hidden start at 0 and stay there). ``"orthogonal"`` /
    ``"random"``: the full-matrix recursion in the eigenbasis (the shared linear-DAE gradient step)
    from ``dynamics.orthogonal_init`` (diagonal sqrt(w0), rotation from ``key`` or the identity) or
    ``dynamics.random_init`` (scale ``init_scale``, needs ``key``); per-direction eps_j enter as the
    corruption term (1/2N) tr(W diag(eps) W^T). The mapping is diag(Wb2 Wb1). Reverse mode stores
    one state per block of ``route.remat_every`` steps.

    Args:
      problem: a :class:`~daedyn.tune.HeldoutProblem`.
      route: the static structure.
      key: PRNG key of the initial weights (``init="random"``; optional for ``"orthogonal"``).
      init_scale: standard deviation of the ``init="random"`` weights, >= 0 (traced).
    Returns:
      ``objective(hyper: Hyperparams) -> scalar`` (``hyper.epochs`` must be None), pure.
    Raises:
      ValueError: for an empty held-out set, hidden outside [1, D], or ``init="random"`` without key.
    Example:
      >>> from daedyn.tune import DynamicsRoute, Hyperparams, problem_from_spectrum
      >>> p = problem_from_spectrum([4.0, 1.0], [2.0, 0.5], n=10, n_heldout=5)
      >>> f = dynamics_objective_fn(p, DynamicsRoute(epochs=1000))
      >>> h = Hyperparams(eps=1.0, alpha=0.1, eps_eval=0.5)
      >>> bool(f(h) < f(h._replace(eps=100.0)))
      True
    """
    check_hidden(route, int(problem.eigvals.shape[-1]))
    if route.init == "random" and key is None:
        raise ValueError("init='random' needs key=")
    check_range("init_scale", init_scale, 0.0)
    data = spectral_data(problem, key=key,
                         init_scale=init_scale if route.init == "random" else None)
    return jtu.Partial(Bound(_dynamics_loss, route), data)


def _dynamics_loss(route: DynamicsRoute, data: SpectralData, hyper: Hyperparams) -> Array:
    _static_epochs(hyper, route)
    h = as_hyperparams(hyper, data.eigvals.dtype)
    mapping = _balanced_mapping if route.init == "balanced" else _matrix_mapping
    w = mapping(route, data, h)
    return _loss(w, data.projected, data.n_heldout, h.eps_eval)


def remat_blocks(run: Callable[[Any, int], Any], carry, steps: int, every: int):
    """``run(carry, k)`` advances k steps; run ``steps`` of them in ``jax.checkpoint`` blocks of ``every``."""
    n_blocks, rem = divmod(int(steps), int(every))
    if n_blocks:
        body = jax.checkpoint(lambda c, _: (run(c, every), None))
        carry, _ = lax.scan(body, carry, None, length=n_blocks)
    if rem:
        carry = jax.checkpoint(lambda c: run(c, rem))(carry)
    return carry


def _balanced_mapping(route: DynamicsRoute, data: SpectralData, h: Hyperparams) -> Array:
    """The scalar recursion per direction from the balanced start with mapping w0 at any depth L
    (``dynamics.scalar_gd(depth=L)``): every factor w0^(1/L) (w1 = w2 = sqrt(w0) at depth 2)."""
    lam = data.eigvals
    mask = hidden_mask(lam.shape[-1], route.hidden, lam.dtype)
    depth = route.depth
    u = (jnp.sqrt(h.w0) if depth == 2 else jnp.broadcast_to(h.w0, lam.shape) ** (1.0 / depth)) * mask

    def run(carry, k):
        tr = dynamics.scalar_gd(lam, h.eps, carry[0], carry[1], alpha=h.alpha, epochs=k, gamma=h.gamma,
                                n=data.n, save_every=k, check_stability=False, observables=("w1", "w2"),
                                depth=depth)
        return tr.w1[..., -1], tr.w2[..., -1]

    w1, w2 = remat_blocks(run, (u, u), route.epochs, route.remat_every)
    return w1 * w2 if depth == 2 else w1 ** (depth - 1) * w2


def _gd_step(lam: Array, ws: tuple[Array, ...], *, eps: Array, gamma: Array, n: Array, alpha: Array,
             mm, form: str) -> tuple[Array, ...]:
    """One gradient-descent step of the linear DAE in the eigenbasis: THE swap point of route 2.

    The shared core's step (``daedyn._linear.gd_step``) with Sigma = diag(lam) and the corruption
    term C = eps I (scalar eps) or diag(eps_j) (per-direction eps, shape (D,)).
    """
    return _linear.gd_step(ws, lam, eps, n=n, gamma=gamma, alpha=alpha, mm=mm, form=form)


def _matrix_mapping(route: DynamicsRoute, data: SpectralData, h: Hyperparams) -> Array:
    """The full-matrix recursion in the eigenbasis (L factors at depth L); returns diag(Wb_L ... Wb_1)."""
    lam = data.eigvals
    dt = lam.dtype
    d = lam.shape[-1]
    hh = d if route.hidden is None else route.hidden
    if route.depth > 2:  # L factor matrices, H units in each hidden layer
        hidden = (hh,) * (route.depth - 1)
        if route.init == "orthogonal":
            a = jnp.broadcast_to(h.w0, (d,))[:min(d, hh)] ** (1.0 / route.depth)
            ws0 = dynamics.orthogonal_init(d, hidden, a, key=data.key, dtype=dt)  # a in every factor
        else:
            ws0 = dynamics.random_init(d, hidden, init_scale=data.init_scale, key=data.key, dtype=dt)
    elif route.init == "orthogonal":
        s = jnp.sqrt(h.w0)
        ws0 = dynamics.orthogonal_init(d, hh, s, s, key=data.key, dtype=dt)
    else:
        ws0 = dynamics.random_init(d, hh, init_scale=data.init_scale, key=data.key, dtype=dt)
    kw = dict(eps=h.eps, gamma=h.gamma, n=data.n, alpha=h.alpha, mm=_linear.matmul_fn(route.precision),
              form=_linear.check_form("auto", d, hh, route.depth))

    def run(carry, k):
        return lax.fori_loop(0, k, lambda _, ws: _gd_step(lam, ws, **kw), carry)

    ws = remat_blocks(run, tuple(ws0), route.epochs, route.remat_every)
    return _linear.mapping(ws, kw["mm"])  # diag(Wb2 Wb1) without forming the D x D product
