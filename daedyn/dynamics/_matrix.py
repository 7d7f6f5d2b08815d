"""Full-matrix learning dynamics of the two-layer linear (denoising, weight-decayed) autoencoder.

The expected loss (authors' scaling, docs/CONTRACTS.md) of W1 (H x D) and W2 (D x H),

    L = 1/(2n) [tr(Sigma) - 2 tr(W Sigma) + tr(W Sigma W^T) + eps tr(W W^T)] + (gamma/2)(|W1|^2 + |W2|^2),

W = W2 W1, depends on the data only through Sigma = V diag(lam) V^T. In the rotated weights
Wb1 = W1 V and Wb2 = V^T W2 (section 3.1) its gradient flow, with tau = n / alpha, is

    tau dWb1/dt = Wb2^T (Lam - Wb2 Wb1 Lam) - eps Wb2^T Wb2 Wb1 - n gamma Wb1
    tau dWb2/dt = (Lam - Wb2 Wb1 Lam) Wb1^T - eps Wb2 Wb1 Wb1^T - n gamma Wb2,

which needs only the spectrum lam. Both eps terms fold into the diagonal: with W = Wb2 Wb1,
eps Wb2^T Wb2 Wb1 = Wb2^T W eps and eps W Wb1^T = W eps Wb1^T, so with M = Lam - W (Lam + eps)
(Lam + eps diagonal: a column scaling, no matmul)

    tau dWb1/dt = Wb2^T M - n gamma Wb1,    tau dWb2/dt = M Wb1^T - n gamma Wb2.

Matmul multiply-adds per step (elementwise work is O(D H) or O(D^2)):

- "square" (the M form): W, Wb2^T M, M Wb1^T: 3 D^2 H.
- "gram" / "gram_t": G = Wb2^T Wb2 and K = Wb1 (Lam + eps) Wb1^T (H x H), then G Wb1 (Lam + eps) and
  Wb2 K: 4 D H^2. "gram_t" is the same algebra on the state (Wb1, Wb2^T), both H x D, so that
  no step transposes anything: tau dWb2^T/dt = Wb1 Lam - K Wb2^T - n gamma Wb2^T.

Gram is cheaper when 4 H < 3 D: H < D (D = 784, H = 256: 2.1e8 vs 4.7e8), square when H >= D
(H = D: 3 D^3 vs 4 D^3; H > D: 3 D^2 H vs 4 D H^2). "auto" picks "gram" for 4 H <= 3 D, else
"square". "gram_t" has the same flops; on a 2-core CPU (D = 784, H = 256, 8 settings) it was
faster than "gram" in isolated step loops but not measurably in the full driver
(benchmarks/matrix_flow.py), so it is an option, not the default. Either gram layout ran at about
the measured float32 matmul peak there, "square" 2-3x slower (2.3x the flops). The data-matrix path
costs O(N D H) per step.

The algebra (loss, gradient forms, observables, rotations) is the shared core
:mod:`daedyn._linear`; this module validates, batches (vmap) and drives it.

Everything here works for H < D, H = D and H > D, is batched (vmap) over any leading batch
dimensions of the spectrum, weights and hyperparameters (seeds and settings), jit-compiled, and
takes a matmul ``precision`` (None / "default" / "high" / "highest") passed to every matmul.
On GPUs the default float32 precision is reduced (TF32); validate with "highest" or float64.

Weights here are in the eigenbasis unless a function says otherwise; :func:`to_eigenbasis` and
:func:`from_eigenbasis` rotate.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from daedyn import _linear as core
from daedyn._checks import (
    check_broadcastable,
    check_finite,
    check_fit,
    check_int,
    check_nonempty,
    check_precision,
    check_range,
    concrete,
    float_dtype,
)
from daedyn._corruption import check_eps_dims, check_noise_term
from daedyn.dynamics._integrate import fixed_step_loop, gd_loop, step_grid
from daedyn.dynamics._matrix_scheduled import matrix_flow_scheduled, matrix_gd_scheduled
from daedyn.dynamics._scalar import warn_nonfinite, warned
from daedyn.schedules import is_schedule

__all__ = ["MatrixTrajectory", "matrix_rhs", "matrix_observables", "matrix_gd", "matrix_flow"]

class MatrixTrajectory(NamedTuple):
    """Observables of a batch of full-matrix runs at the save times, plus the final weights.

    Attributes:
      t: (T,) save times in epochs.
      mapping: (*batch, T, D) per-direction mapping diag(V^T W2 W1 V) = diag(Wb2 Wb1).
      singular_values: (*batch, T, min(H, D)) singular values of W2 W1, descending.
      weight_norm: (*batch, T) |W1|^2 + |W2|^2 (Frobenius; rotation-invariant).
      loss: (*batch, T) expected loss L (authors' scaling) including weight decay.
      w1, w2: (*batch, H, D), (*batch, D, H) final weights, in the basis the run used (the
        eigenbasis for :func:`matrix_gd` / :func:`matrix_flow`, the data's basis otherwise).
    """

    t: Array
    mapping: Array
    singular_values: Array
    weight_norm: Array
    loss: Array
    w1: Array
    w2: Array

    def to_xarray(self, batch_dims=None, coords=None, *, time_dim: str = "epoch"):
        """The run as an ``xarray.Dataset`` (mapping over ``direction``, singular values over
        ``component``, the final w1 / w2 over ``hidden`` and ``input``), with the dimension names
        of :mod:`daedyn.sweep`.

        Args:
          batch_dims: names of the leading batch axes (e.g. ``("eps",)``; unnamed: ``batch``, ...).
          coords: values along named dimensions (e.g. ``{"eps": eps_values}``).
          time_dim: name of the save-time dimension: ``"epoch"`` (the sweeps' name for gradient
            descent and training) or ``"t"`` (their name for the continuous flows).
        Raises:
          ImportError: xarray (the ``sweep`` extra) is not installed.
        """
        from daedyn._xarray import dataset

        return dataset({"mapping": (self.mapping, (time_dim, "direction")),
                        "singular_values": (self.singular_values, (time_dim, "component")),
                        "weight_norm": (self.weight_norm, (time_dim,)), "loss": (self.loss, (time_dim,)),
                        "w1": (self.w1, ("hidden", "input")), "w2": (self.w2, ("input", "hidden"))},
                       time=(time_dim, self.t), batch_dims=batch_dims, coords=coords,
                       what="MatrixTrajectory.to_xarray")


# ----------------------------------------------------------------------------------------------
# The state layout of a form: "gram_t" keeps Wb2 transposed (both factors H x D)


def _to_state(form, w1, w2):
    return (w1, w2.T) if form == "gram_t" else (w1, w2)


def _from_state(form, y):
    return (y[0], y[1].T) if form == "gram_t" else tuple(y)


def _observe(lam, w1, w2, eps, gamma, n, mm):
    return core.observe((w1, w2), lam, eps, n=n, gamma=gamma, mm=mm)


def matrix_rhs(eigvals: ArrayLike, w1: ArrayLike, w2: ArrayLike, *, eps: ArrayLike = 0.0,
               gamma: ArrayLike = 0.0, n: ArrayLike = 1, precision=None) -> tuple[Array, Array]:
    """tau times (dWb1/dt, dWb2/dt) in the eigenbasis (section 3.1 plus weight decay); one run.

    Args:
      eigvals: (D,) eigenvalues of Sigma. w1: (H, D) = W1 V. w2: (D, H) = V^T W2.
      eps, gamma, n: scalars. precision: matmul precision.
    Example:
      >>> d1, d2 = matrix_rhs(jnp.array([2.0, 1.0]), 0.5 * jnp.eye(1, 2), 0.5 * jnp.eye(2, 1))
      >>> d1.tolist()  # direction 0: w2 lam (1 - w) = 0.5 * 2 * 0.75
      [[0.75, 0.0]]
    """
    lam, w1, w2 = jnp.asarray(eigvals), jnp.asarray(w1), jnp.asarray(w2)
    form = core.choose_form(w1.shape[-1], w1.shape[-2])
    return core.rhs((w1, w2), lam, jnp.asarray(eps), ng=jnp.asarray(n) * gamma,
                    mm=core.matmul_fn(check_precision(precision)), form=form)


def matrix_observables(eigvals: ArrayLike, w1: ArrayLike, w2: ArrayLike, *, eps: ArrayLike = 0.0,
                       gamma: ArrayLike = 0.0, n: ArrayLike = 1, precision=None):
    """(mapping (D,), singular values (min(H, D),), weight norm, expected loss) of one eigenbasis state.

    The loss uses the spectrum only: 1/(2n)[sum lam - 2 sum_j lam_j m_jj + sum_ij M_ij^2 (lam_j + eps)]
    + (gamma/2)(|W1|^2 + |W2|^2), with M = Wb2 Wb1.

    Example:
      >>> m, s, norm, loss = matrix_observables(jnp.array([2.0, 1.0]), jnp.eye(1, 2), jnp.eye(2, 1))
      >>> m.tolist(), s.tolist(), float(norm), float(loss)  # direction 1 unlearned: loss 1 / 2
      ([1.0, 0.0], [1.0], 2.0, 0.5)
    """
    lam, w1, w2 = jnp.asarray(eigvals), jnp.asarray(w1), jnp.asarray(w2)
    return _observe(lam, w1, w2, jnp.asarray(eps), gamma, n, core.matmul_fn(check_precision(precision)))


# ----------------------------------------------------------------------------------------------
# Validation and batching


def _check_weights(d: int, w1, w2, lead: str = "eigvals") -> tuple[int, int]:
    s1, s2 = np.shape(w1), np.shape(w2)
    if len(s1) < 2 or len(s2) < 2:
        raise ValueError(f"w1 must be (..., H, D) and w2 (..., D, H); got shapes {s1} and {s2}")
    h = s1[-2]
    if h < 1:
        raise ValueError(f"the hidden size H (w1.shape[-2]) must be >= 1; got {h}")
    if s1[-1] != d or s2[-2:] != (d, h):
        raise ValueError(f"shapes must be w1 (..., H, D), w2 (..., D, H) with D = {d} from {lead}; "
                         f"got w1 {s1}, w2 {s2}")
    check_finite("w1", w1)
    check_finite("w2", w2)
    return d, h


def _check_hyper(eps, gamma, n, alpha=None, tau=None, eps_dims=0):
    check_noise_term("eps", eps, eps_dims)
    check_range("gamma", gamma, 0.0)
    check_range("n", n, 0.0, lo_open=True)
    if alpha is not None:
        check_range("alpha", alpha, 0.0, lo_open=True)
    if tau is not None:
        check_range("tau", tau, 0.0, lo_open=True)


def _batch_shape(core: dict, scalars: dict) -> tuple[int, ...]:
    """Broadcast batch shape: ``core`` maps name -> (array, number of core dims)."""
    shapes = {k: np.shape(v)[: np.ndim(v) - c] for k, (v, c) in core.items()}
    shapes.update({k: np.shape(v) for k, v in scalars.items()})
    return check_broadcastable(**{k: np.empty(s, np.bool_) for k, s in shapes.items()})


def _flat(x, bshape, ncore):
    """Broadcast x to bshape + its core shape and flatten the batch: (B, *core)."""
    core = x.shape[x.ndim - ncore:] if ncore else ()
    return jnp.broadcast_to(x, tuple(bshape) + core).reshape((-1,) + core)


def _unflat(tree, bshape):
    return jax.tree_util.tree_map(lambda a: a.reshape(tuple(bshape) + a.shape[1:]), tree)


def _stability(eigvals, h, eps, gamma, alpha, n, w1=None, w2=None, eps_dims=0, epochs=None):
    """Warn for the learned (top min(H, D)) directions whose GD step cannot settle at the fixed point
    or overshoots from the start. The start of direction j is summarised by the norms of its column
    of Wb1 and its row of Wb2 (exact for the decoupled start of section 3.2, a proxy otherwise); a
    per-direction noise term by eps_j (exact for a diagonal term); a (D, D) term, when the per-direction
    check passes, also by the largest Hessian eigenvalue of the coupled loss
    (:func:`daedyn._linear.check_coupled_stability`)."""
    vals = [concrete(x) for x in (eigvals, eps, gamma, alpha, n)]
    if any(v is None for v in vals):
        return None
    lam, eps, gamma, alpha, n = (np.asarray(v, np.float64) for v in vals)
    lam = lam[..., :h]
    ex = lambda v: v[..., None]
    eps_diag = eps
    if eps_dims:
        eps_diag = np.diagonal(eps, axis1=-2, axis2=-1) if eps_dims == 2 else eps
        eps_diag = eps_diag[..., :h]
        ex_eps = lambda v: v
    else:
        ex_eps = ex
    start = {}
    c1, c2 = concrete(w1), concrete(w2)
    if c1 is not None and c2 is not None:
        start = dict(w1=np.linalg.norm(np.asarray(c1, np.float64), axis=-2)[..., :h],
                     w2=np.linalg.norm(np.asarray(c2, np.float64), axis=-1)[..., :h])
    edge = core.check_gd_stability(lam, ex_eps(eps_diag), ex(gamma), ex(alpha), ex(n), stacklevel=3, **start)
    if eps_dims == 2 and np.ndim(vals[0]) == 1 and not (edge is not None and np.any(~(np.asarray(edge) < 2))):
        # a coupled term: the Hessian of the coupled loss (daedyn._linear._coupled), not its diagonal
        coupled = core.check_coupled_stability(vals[0], eps, alpha, n, hidden=h, epochs=epochs,
                                               stacklevel=3)
        return coupled if np.any(~(coupled < 2)) else edge
    return edge


def _pack(t, obs, y, bshape):
    mapping, svals, norm, loss = _unflat(obs, bshape)
    w1, w2 = _unflat(y, bshape)
    return MatrixTrajectory(t, mapping, svals, norm, loss, w1, w2)


# ----------------------------------------------------------------------------------------------
# Eigenbasis drivers


@functools.partial(jax.jit, static_argnames=("n_saves", "save_every", "precision", "form", "unroll",
                                             "eps_dims"))
def _matrix_gd_core(lam, w1, w2, eps, gamma, alpha, n, *, n_saves, save_every, precision, form, unroll,
                    eps_dims=0):
    bshape = jnp.broadcast_shapes(lam.shape[:-1], w1.shape[:-2], w2.shape[:-2],
                                  eps.shape[:eps.ndim - eps_dims], gamma.shape,
                                  alpha.shape, n.shape)
    mm = core.matmul_fn(precision)

    def one(lam, w1, w2, eps, gamma, alpha, n):
        def step(y):
            return core.gd_step(y, lam, eps, n=n, gamma=gamma, alpha=alpha, mm=mm, form=form)

        observe = lambda y: _observe(lam, *_from_state(form, y), eps, gamma, n, mm)
        y, obs = gd_loop(step, _to_state(form, w1, w2), observe, n_saves=n_saves, save_every=save_every,
                         unroll=unroll)
        return _from_state(form, y), obs

    flat = [_flat(x, bshape, c) for x, c in ((lam, 1), (w1, 2), (w2, 2), (eps, eps_dims), (gamma, 0),
                                              (alpha, 0), (n, 0))]
    y, obs = jax.vmap(one)(*flat)
    t = jnp.arange(n_saves + 1, dtype=w1.dtype) * save_every
    return _pack(t, obs, y, bshape)


def _check_eig_inputs(eigvals, w1, w2, eps, gamma, n, precision, form, eps_dims=0, **rate):
    """Validation shared by :func:`matrix_gd` and :func:`matrix_flow` (``rate``: alpha= or tau=);
    returns (precision, D, H, resolved form)."""
    precision = check_precision(precision)
    if np.ndim(eigvals) < 1:
        raise ValueError("eigvals must have shape (..., D)")
    check_nonempty("eigvals", np.shape(eigvals)[-1], "D = eigvals.shape[-1]")
    check_range("eigvals", eigvals, 0.0)
    d, h = _check_weights(np.shape(eigvals)[-1], w1, w2)
    eps_dims = check_eps_dims(eps, eps_dims, d)
    _check_hyper(eps, gamma, n, eps_dims=eps_dims, **rate)
    _batch_shape({"eigvals": (eigvals, 1), "w1": (w1, 2), "w2": (w2, 2), "eps": (eps, eps_dims)},
                 {"gamma": gamma, **rate, "n": n})
    eps_batch = np.shape(eps)[:np.ndim(eps) - eps_dims]
    batch = math.prod(np.broadcast_shapes(np.shape(eigvals)[:-1], np.shape(w1)[:-2], np.shape(w2)[:-2],
                                          eps_batch, *(np.shape(x) for x in (gamma, n, *rate.values()))))
    measure = dict(dtype=float_dtype(eigvals, w1, w2), batch=batch, precision=precision, transposed_ok=True)
    return precision, d, h, core.check_form(form, d, h, measure=measure)


def matrix_gd(eigvals: ArrayLike, w1: ArrayLike, w2: ArrayLike, *, eps: ArrayLike = 0.0,
              gamma: ArrayLike = 0.0, alpha: ArrayLike, n: ArrayLike, epochs: int, save_every: int = 1,
              precision=None, form: str = "auto", unroll: int = 1,
              check_stability: bool = True, eps_dims: int = 0) -> MatrixTrajectory:
    """Full-batch gradient descent on the expected loss, in the eigenbasis of Sigma (spectrum only).

    One step (one epoch) is ``Wb <- Wb + (alpha / n) * RHS`` with the eigenbasis right-hand sides of
    section 3.1 plus weight decay (module docstring); this is exactly gradient descent with rate alpha
    on L, rotated by V.

    Args:
      eigvals: (*batch, D) eigenvalues of Sigma = X^T X (a sum), >= 0, descending by convention.
      w1: (*batch, H, D) initial Wb1 = W1 V. w2: (*batch, D, H) initial Wb2 = V^T W2.
      eps: the corruption term in the eigenbasis: the noise level n s^2 >= 0 (``eps_dims=0``), a
        per-direction (*batch, D) vector eps_j >= 0 (``eps_dims=1``) or a (*batch, D, D) symmetric
        positive semi-definite matrix V^T C V (``eps_dims=2``; e.g. ``noise.masking(p).marginal_term``
        of the spectrum), in the paper's (summed) scaling. gamma: weight decay, >= 0.
        alpha: learning rate, > 0. n: number of samples N, > 0. (All: any batch shape.)
        ``eps`` (with ``eps_dims`` 0 or 1) and ``gamma`` may be :mod:`daedyn.schedules` schedules
        whose value has the constant's shape: step k (epoch k to k + 1) uses eps(k), gamma(k), as
        :func:`scalar_gd` does; the loss saved at t uses eps(t) (docs/schedules.md). ``alpha`` may
        be a schedule too (a learning-rate schedule: step k uses alpha(k); values > 0).
      epochs, save_every: steps and spacing of saves (epochs a multiple of save_every; t = 0 saved).
      precision: matmul precision for every matmul. form: "auto" (the cheaper of the two below),
        "gram" / "gram_t" (4 D H^2 multiply-adds per step; gram_t keeps Wb2^T) or "square" (the
        M form, 3 D^2 H); see the module docstring. unroll: steps per loop iteration (speed only).
      check_stability: warn when alpha * h_max >= 2 for a learned direction (balanced fixed point;
        a vector or matrix eps enters through its diagonal eps_j).
      eps_dims: trailing dimensions of ``eps`` that are one run's corruption term: 0 (scalar, the
        default), 1 ((D,) diagonal) or 2 ((D, D) matrix); leading ones are batch dimensions.
    Returns:
      :class:`MatrixTrajectory`; the batch shape is the broadcast of all batch dimensions.
    Raises:
      ValueError: negative eigenvalues/eps/gamma, alpha <= 0, n <= 0, D < 1 or H < 1, NaN or inf,
        values outside the range of the dtype, bad shapes.
    Example:
      >>> lam = jnp.array([3.0, 2.0, 1.0])
      >>> from daedyn.dynamics import orthogonal_init
      >>> w1, w2 = orthogonal_init(3, 2, 0.1, 0.1)
      >>> traj = matrix_gd(lam, w1, w2, eps=1.0, alpha=0.1, n=1, epochs=500, save_every=250)
      >>> np.round(np.asarray(traj.mapping[-1], np.float64), 3).tolist()  # lam / (lam + eps), H = 2
      [0.75, 0.667, 0.0]
    """
    if any(map(is_schedule, (eps, gamma, alpha))):  # step k uses eps(k), alpha(k) (_matrix_scheduled.py)
        return matrix_gd_scheduled(eigvals, w1, w2, eps=eps, gamma=gamma, alpha=alpha, n=n, epochs=epochs,
                                   save_every=save_every, precision=precision, form=form, unroll=unroll,
                                   check_stability=check_stability, eps_dims=eps_dims)
    epochs = check_int("epochs", epochs, 0)
    save_every = check_int("save_every", save_every, 1)
    if epochs % save_every:
        raise ValueError(f"epochs ({epochs}) must be a multiple of save_every ({save_every})")
    precision, d, h, form = _check_eig_inputs(eigvals, w1, w2, eps, gamma, n, precision, form,
                                              eps_dims, alpha=alpha)
    dtype = float_dtype(eigvals, w1, w2, eps, gamma, alpha)
    check_fit(dtype, eigvals=eigvals, w1=w1, w2=w2, eps=eps, gamma=gamma, alpha=alpha, n=n)
    edge = (_stability(eigvals, min(h, d), eps, gamma, alpha, n, w1, w2, eps_dims=eps_dims, epochs=epochs)
            if check_stability else None)
    args = [jnp.asarray(x, dtype) for x in (eigvals, w1, w2, eps, gamma, alpha, n)]
    return warn_nonfinite("matrix_gd", _matrix_gd_core(
        *args, n_saves=epochs // save_every, save_every=save_every, precision=precision, form=form,
        unroll=check_int("unroll", unroll, 1), eps_dims=eps_dims), already_warned=warned(edge))


@functools.partial(jax.jit, static_argnames=("m_static", "precision", "form", "unroll", "eps_dims"))
def _matrix_flow_core(ts, hs, ms, lam, w1, w2, eps, gamma, tau, n, *, m_static, precision, form, unroll,
                      eps_dims=0):
    bshape = jnp.broadcast_shapes(lam.shape[:-1], w1.shape[:-2], w2.shape[:-2],
                                  eps.shape[:eps.ndim - eps_dims], gamma.shape,
                                  tau.shape, n.shape)
    mm = core.matmul_fn(precision)

    def one(lam, w1, w2, eps, gamma, tau, n):
        def f(y):
            d1, d2 = core.rhs(y, lam, eps, ng=n * gamma, mm=mm, form=form)
            return d1 / tau, d2 / tau

        observe = lambda y: _observe(lam, *_from_state(form, y), eps, gamma, n, mm)
        y, obs = fixed_step_loop(f, _to_state(form, w1, w2), observe, hs, ms, m_static, unroll=unroll)
        return _from_state(form, y), obs

    flat = [_flat(x, bshape, c) for x, c in ((lam, 1), (w1, 2), (w2, 2), (eps, eps_dims), (gamma, 0),
                                              (tau, 0), (n, 0))]
    y, obs = jax.vmap(one)(*flat)
    return _pack(ts, obs, y, bshape)


def matrix_flow(ts: ArrayLike, eigvals: ArrayLike, w1: ArrayLike, w2: ArrayLike, *, eps: ArrayLike = 0.0,
                gamma: ArrayLike = 0.0, tau: ArrayLike, n: ArrayLike, dt: float, precision=None,
                form: str = "auto", unroll: int = 1, eps_dims: int = 0) -> MatrixTrajectory:
    """The continuous gradient flow of section 3.1 (plus weight decay) with fixed-step RK4.

    Steps are at most ``dt`` epochs and land exactly on each save time (see :func:`scalar_flow`).

    Args:
      ts: (T,) save times (epochs), >= 0, non-decreasing; the run starts at t = 0.
      eigvals, w1, w2, eps, gamma, n, precision, form, unroll, eps_dims: as for :func:`matrix_gd`.
      tau: time constant n / alpha, > 0. dt: largest RK4 step in epochs, > 0.
        With ``eps`` or ``gamma`` schedules the right-hand side at t uses eps(t), gamma(t) (an RK4
        step from t to t + h evaluates t, t + h/2 and the left limit at t + h, as
        :func:`scalar_flow`): put a piecewise schedule's jumps among ``ts``. ``tau`` may be a
        schedule N / alpha(t) too (the flow of a learning-rate schedule; values > 0).
    Returns:
      :class:`MatrixTrajectory` saved at ``ts``.
    Raises:
      ValueError: as :func:`matrix_gd`, plus tau <= 0, dt <= 0, bad ts.
    Example:
      >>> from daedyn.dynamics import orthogonal_init
      >>> w1, w2 = orthogonal_init(2, 2, 0.1, 0.1)
      >>> traj = matrix_flow(jnp.array([0.0, 40.0]), jnp.array([2.0, 1.0]), w1, w2, gamma=0.25,
      ...                    tau=1.0, n=1, dt=0.05)
      >>> np.round(np.asarray(traj.mapping[-1], np.float64), 4).tolist()  # 1 - n gamma / lam
      [0.875, 0.75]
    """
    if any(map(is_schedule, (eps, gamma, tau))):  # the RHS at t uses eps(t), tau(t) (_matrix_scheduled.py)
        return matrix_flow_scheduled(ts, eigvals, w1, w2, eps=eps, gamma=gamma, tau=tau, n=n, dt=dt,
                                     precision=precision, form=form, unroll=unroll, eps_dims=eps_dims)
    precision, d, h, form = _check_eig_inputs(eigvals, w1, w2, eps, gamma, n, precision, form, eps_dims,
                                              tau=tau)
    ts, hs, ms, m_static = step_grid(ts, dt)
    dtype = float_dtype(eigvals, w1, w2, eps, gamma, tau)
    check_fit(dtype, ts=ts, eigvals=eigvals, w1=w1, w2=w2, eps=eps, gamma=gamma, tau=tau, n=n)
    args = [jnp.asarray(x, dtype) for x in (ts, hs)] + [jnp.asarray(ms, jnp.int32)]
    args += [jnp.asarray(x, dtype) for x in (eigvals, w1, w2, eps, gamma, tau, n)]
    return warn_nonfinite("matrix_flow", _matrix_flow_core(
        *args, m_static=m_static, precision=precision, form=form, unroll=check_int("unroll", unroll, 1),
        eps_dims=eps_dims))
