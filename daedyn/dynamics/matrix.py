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

Everything here works for H < D, H = D and H > D, is batched (vmap) over any leading batch
dimensions of the spectrum, weights and hyperparameters (seeds and settings), jit-compiled, and
takes a matmul ``precision`` (None / "default" / "high" / "highest") passed to every matmul.
On GPUs the default float32 precision is reduced (TF32); validate with "highest" or float64.

Weights here are in the eigenbasis unless a function says otherwise; :func:`to_eigenbasis` and
:func:`from_eigenbasis` rotate.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from daedyn._checks import check_broadcastable, check_range, concrete
from daedyn.dynamics._integrate import (
    check_int,
    check_precision,
    fixed_step_loop,
    float_dtype,
    gd_loop,
    step_grid,
)
from daedyn.dynamics._integrate import (
    finite as _finite,
)
from daedyn._linear import check_gd_stability

__all__ = [
    "MatrixTrajectory", "matrix_rhs", "matrix_gd", "matrix_flow", "matrix_gd_sigma", "matrix_gd_data",
    "orthogonal_init", "random_init", "to_eigenbasis", "from_eigenbasis", "matrix_observables",
]


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


# ----------------------------------------------------------------------------------------------
# Right-hand sides (single run; vmapped by the drivers)


def _mm(precision):
    return lambda a, b: jnp.matmul(a, b, precision=precision)


FORMS = ("gram", "gram_t", "square")


def _choose_form(d: int, h: int) -> str:
    """The cheaper form by matmul multiply-adds: 4 D H^2 (gram) vs 3 D^2 H (square)."""
    return "gram" if 4 * h <= 3 * d else "square"


def _check_form(form: str, d: int, h: int) -> str:
    form = _choose_form(d, h) if form == "auto" else form
    if form not in FORMS:
        raise ValueError(f"form must be 'auto', 'gram', 'gram_t' or 'square'; got {form!r}")
    return form


def _rhs_eig_t(lam, u1, u2, eps, ng, mm):
    """The gram form on the transposed state: u1 = Wb1, u2 = Wb2^T (both H x D); returns
    tau (dWb1/dt, dWb2^T/dt). Same products as "gram", no transposes of H x D arrays."""
    lam_r = lam[None, :]
    e1 = u1 * (lam_r + eps)  # Wb1 (Lam + eps)
    g = mm(u2, u2.T)  # Wb2^T Wb2                 (D H^2)
    k = mm(e1, u1.T)  # Wb1 (Lam + eps) Wb1^T     (D H^2)
    return u2 * lam_r - mm(g, e1) - ng * u1, u1 * lam_r - mm(k, u2) - ng * u2  # (2 D H^2)


def _to_state(form, w1, w2):
    return (w1, w2.T) if form == "gram_t" else (w1, w2)


def _from_state(form, y):
    return (y[0], y[1].T) if form == "gram_t" else tuple(y)


def _rhs_state(lam, y, eps, ng, mm, form):
    """tau dy/dt for the state layout of ``form`` (see :func:`_to_state`)."""
    if form == "gram_t":
        return _rhs_eig_t(lam, y[0], y[1], eps, ng, mm)
    return _rhs_eig(lam, y[0], y[1], eps, ng, mm, form)


def _rhs_eig(lam, w1, w2, eps, ng, mm, form):
    """tau dWb/dt in the eigenbasis; ``lam`` (D,), w1 (H, D), w2 (D, H), scalars eps, ng = n gamma."""
    lam_r = lam[None, :]
    if form == "gram_t":
        d1, d2t = _rhs_eig_t(lam, w1, w2.T, eps, ng, mm)
        return d1, d2t.T
    if form == "gram":
        s1 = w1 * lam_r  # Wb1 Lam
        s1e = s1 + eps * w1  # Wb1 (Lam + eps)
        g2 = mm(w2.T, w2)  # Wb2^T Wb2            (D H^2)
        d1 = w2.T * lam_r - mm(g2, s1e) - ng * w1  # (D H^2)
        k = mm(s1e, w1.T)  # Wb1 (Lam + eps) Wb1^T (D H^2)
        d2 = s1.T - mm(w2, k) - ng * w2  # (D H^2)
        return d1, d2
    w = mm(w2, w1)  # W = Wb2 Wb1 (D^2 H)
    m = jnp.diag(lam) - w * (lam_r + eps)  # M = Lam - W (Lam + eps): column scaling
    return mm(w2.T, m) - ng * w1, mm(m, w1.T) - ng * w2  # (2 D^2 H)


def _rhs_sigma(sigma, w1, w2, eps, ng, mm):
    """tau dW/dt in the data's basis from the full second moment ``sigma`` (D, D)."""
    s1 = mm(w1, sigma)  # W1 Sigma             (D^2 H)
    s1e = s1 + eps * w1
    g2 = mm(w2.T, w2)
    d1 = mm(w2.T, sigma) - mm(g2, s1e) - ng * w1  # (D^2 H + D H^2)
    k = mm(s1e, w1.T)
    d2 = s1.T - mm(w2, k) - ng * w2
    return d1, d2


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
    form = _choose_form(w1.shape[-1], w1.shape[-2])
    return _rhs_eig(lam, w1, w2, eps, jnp.asarray(n) * gamma, _mm(check_precision(precision)), form)


# ----------------------------------------------------------------------------------------------
# Observables


def _svals(w1, w2, mm):
    """Singular values of W2 W1 through the QR factors of W2 and W1^T (H <= D) or directly."""
    h, d = w1.shape
    if h <= d:
        r2 = jnp.linalg.qr(w2, mode="r")
        r1 = jnp.linalg.qr(w1.T, mode="r")
        return jnp.linalg.svd(mm(r2, r1.T), compute_uv=False)
    return jnp.linalg.svd(mm(w2, w1), compute_uv=False)


def _observe_eig(lam, w1, w2, eps, gamma, n, mm):
    mapping = jnp.sum(w2 * w1.T, axis=1)
    norm = jnp.sum(w1 * w1) + jnp.sum(w2 * w2)
    # tr(W Sigma W^T) + eps tr(W W^T) = tr(Wb2^T Wb2 Wb1 (Lam + eps) Wb1^T), both H x H symmetric.
    k = mm(w1 * (lam[None, :] + eps), w1.T)
    quad = jnp.sum(mm(w2.T, w2) * k)
    loss = (jnp.sum(lam) - 2 * jnp.sum(mapping * lam) + quad) / (2 * n) + gamma / 2 * norm
    return mapping, _svals(w1, w2, mm), norm, loss


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
    return _observe_eig(lam, w1, w2, eps, gamma, n, _mm(check_precision(precision)))


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
    _finite("w1", w1)
    _finite("w2", w2)
    return d, h


def _check_hyper(eps, gamma, n, alpha=None, tau=None):
    check_range("eps", eps, 0.0)
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


def _stability(eigvals, h, eps, gamma, alpha, n):
    """Warn for the learned (top min(H, D)) directions whose GD step cannot settle."""
    vals = [concrete(x) for x in (eigvals, eps, gamma, alpha, n)]
    if any(v is None for v in vals):
        return
    lam, eps, gamma, alpha, n = (np.asarray(v, np.float64) for v in vals)
    lam = lam[..., :h]
    ex = lambda v: v[..., None]
    check_gd_stability(lam, ex(eps), ex(gamma), ex(alpha), ex(n), stacklevel=3)


def _pack(t, obs, y, bshape):
    mapping, svals, norm, loss = _unflat(obs, bshape)
    w1, w2 = _unflat(y, bshape)
    return MatrixTrajectory(t, mapping, svals, norm, loss, w1, w2)


# ----------------------------------------------------------------------------------------------
# Eigenbasis drivers


@functools.partial(jax.jit, static_argnames=("n_saves", "save_every", "precision", "form", "unroll"))
def _matrix_gd_core(lam, w1, w2, eps, gamma, alpha, n, *, n_saves, save_every, precision, form, unroll):
    bshape = jnp.broadcast_shapes(lam.shape[:-1], w1.shape[:-2], w2.shape[:-2], eps.shape, gamma.shape,
                                  alpha.shape, n.shape)
    mm = _mm(precision)

    def one(lam, w1, w2, eps, gamma, alpha, n):
        inv_tau, ng = alpha / n, n * gamma

        def step(y):
            d1, d2 = _rhs_state(lam, y, eps, ng, mm, form)
            return y[0] + inv_tau * d1, y[1] + inv_tau * d2

        observe = lambda y: _observe_eig(lam, *_from_state(form, y), eps, gamma, n, mm)
        y, obs = gd_loop(step, _to_state(form, w1, w2), observe, n_saves=n_saves, save_every=save_every,
                         unroll=unroll)
        return _from_state(form, y), obs

    flat = [_flat(x, bshape, c) for x, c in ((lam, 1), (w1, 2), (w2, 2), (eps, 0), (gamma, 0),
                                              (alpha, 0), (n, 0))]
    y, obs = jax.vmap(one)(*flat)
    t = jnp.arange(n_saves + 1, dtype=w1.dtype) * save_every
    return _pack(t, obs, y, bshape)


def _check_eig_inputs(eigvals, w1, w2, eps, gamma, n, precision, form, **rate):
    """Validation shared by :func:`matrix_gd` and :func:`matrix_flow` (``rate``: alpha= or tau=);
    returns (precision, D, H, resolved form)."""
    precision = check_precision(precision)
    if np.ndim(eigvals) < 1:
        raise ValueError("eigvals must have shape (..., D)")
    check_range("eigvals", eigvals, 0.0)
    d, h = _check_weights(np.shape(eigvals)[-1], w1, w2)
    _check_hyper(eps, gamma, n, **rate)
    _batch_shape({"eigvals": (eigvals, 1), "w1": (w1, 2), "w2": (w2, 2)},
                 {"eps": eps, "gamma": gamma, **rate, "n": n})
    return precision, d, h, _check_form(form, d, h)


def matrix_gd(eigvals: ArrayLike, w1: ArrayLike, w2: ArrayLike, *, eps: ArrayLike = 0.0,
              gamma: ArrayLike = 0.0, alpha: ArrayLike, n: ArrayLike, epochs: int, save_every: int = 1,
              precision=None, form: str = "auto", unroll: int = 1,
              check_stability: bool = True) -> MatrixTrajectory:
    """Full-batch gradient descent on the expected loss, in the eigenbasis of Sigma (spectrum only).

    One step (one epoch) is ``Wb <- Wb + (alpha / n) * RHS`` with the eigenbasis right-hand sides of
    section 3.1 plus weight decay (module docstring); this is exactly gradient descent with rate alpha
    on L, rotated by V.

    Args:
      eigvals: (*batch, D) eigenvalues of Sigma = X^T X (a sum), >= 0, descending by convention.
      w1: (*batch, H, D) initial Wb1 = W1 V. w2: (*batch, D, H) initial Wb2 = V^T W2.
      eps: noise level n s^2, >= 0. gamma: weight decay, >= 0. alpha: learning rate, > 0.
      n: number of samples N, > 0. (eps, gamma, alpha, n: any batch shape.)
      epochs, save_every: steps and spacing of saves (epochs a multiple of save_every; t = 0 saved).
      precision: matmul precision for every matmul. form: "auto" (the cheaper of the two below),
        "gram" / "gram_t" (4 D H^2 multiply-adds per step; gram_t keeps Wb2^T) or "square" (the
        M form, 3 D^2 H); see the module docstring. unroll: steps per loop iteration (speed only).
      check_stability: warn when alpha * h_max >= 2 for a learned direction (balanced fixed point).
    Returns:
      :class:`MatrixTrajectory`; the batch shape is the broadcast of all batch dimensions.
    Raises:
      ValueError: negative eigenvalues/eps/gamma, alpha <= 0, n <= 0, H < 1, NaN, bad shapes.
    Example:
      >>> lam = jnp.array([3.0, 2.0, 1.0])
      >>> w1, w2 = orthogonal_init(3, 2, 0.1, 0.1)
      >>> traj = matrix_gd(lam, w1, w2, eps=1.0, alpha=0.1, n=1, epochs=500, save_every=250)
      >>> np.round(np.asarray(traj.mapping[-1], np.float64), 3).tolist()  # lam / (lam + eps), H = 2
      [0.75, 0.667, 0.0]
    """
    epochs = check_int("epochs", epochs, 0)
    save_every = check_int("save_every", save_every, 1)
    if epochs % save_every:
        raise ValueError(f"epochs ({epochs}) must be a multiple of save_every ({save_every})")
    precision, d, h, form = _check_eig_inputs(eigvals, w1, w2, eps, gamma, n, precision, form,
                                              alpha=alpha)
    if check_stability:
        _stability(eigvals, min(h, d), eps, gamma, alpha, n)
    dtype = float_dtype(eigvals, w1, w2, eps, gamma, alpha)
    args = [jnp.asarray(x, dtype) for x in (eigvals, w1, w2, eps, gamma, alpha, n)]
    return _matrix_gd_core(*args, n_saves=epochs // save_every, save_every=save_every,
                           precision=precision, form=form, unroll=check_int("unroll", unroll, 1))


@functools.partial(jax.jit, static_argnames=("m_static", "precision", "form", "unroll"))
def _matrix_flow_core(ts, hs, ms, lam, w1, w2, eps, gamma, tau, n, *, m_static, precision, form, unroll):
    bshape = jnp.broadcast_shapes(lam.shape[:-1], w1.shape[:-2], w2.shape[:-2], eps.shape, gamma.shape,
                                  tau.shape, n.shape)
    mm = _mm(precision)

    def one(lam, w1, w2, eps, gamma, tau, n):
        ng = n * gamma

        def f(y):
            d1, d2 = _rhs_state(lam, y, eps, ng, mm, form)
            return d1 / tau, d2 / tau

        observe = lambda y: _observe_eig(lam, *_from_state(form, y), eps, gamma, n, mm)
        y, obs = fixed_step_loop(f, _to_state(form, w1, w2), observe, hs, ms, m_static, unroll=unroll)
        return _from_state(form, y), obs

    flat = [_flat(x, bshape, c) for x, c in ((lam, 1), (w1, 2), (w2, 2), (eps, 0), (gamma, 0),
                                              (tau, 0), (n, 0))]
    y, obs = jax.vmap(one)(*flat)
    return _pack(ts, obs, y, bshape)


def matrix_flow(ts: ArrayLike, eigvals: ArrayLike, w1: ArrayLike, w2: ArrayLike, *, eps: ArrayLike = 0.0,
                gamma: ArrayLike = 0.0, tau: ArrayLike, n: ArrayLike, dt: float, precision=None,
                form: str = "auto", unroll: int = 1) -> MatrixTrajectory:
    """The continuous gradient flow of section 3.1 (plus weight decay) with fixed-step RK4.

    Steps are at most ``dt`` epochs and land exactly on each save time (see :func:`scalar_flow`).

    Args:
      ts: (T,) save times (epochs), >= 0, non-decreasing; the run starts at t = 0.
      eigvals, w1, w2, eps, gamma, n, precision, form, unroll: as for :func:`matrix_gd`.
      tau: time constant n / alpha, > 0. dt: largest RK4 step in epochs, > 0.
    Returns:
      :class:`MatrixTrajectory` saved at ``ts``.
    Raises:
      ValueError: as :func:`matrix_gd`, plus tau <= 0, dt <= 0, bad ts.
    Example:
      >>> w1, w2 = orthogonal_init(2, 2, 0.1, 0.1)
      >>> traj = matrix_flow(jnp.array([0.0, 40.0]), jnp.array([2.0, 1.0]), w1, w2, gamma=0.25,
      ...                    tau=1.0, n=1, dt=0.05)
      >>> np.round(np.asarray(traj.mapping[-1], np.float64), 4).tolist()  # 1 - n gamma / lam
      [0.875, 0.75]
    """
    precision, d, h, form = _check_eig_inputs(eigvals, w1, w2, eps, gamma, n, precision, form, tau=tau)
    ts, hs, ms, m_static = step_grid(ts, dt)
    dtype = float_dtype(eigvals, w1, w2, eps, gamma, tau)
    args = [jnp.asarray(x, dtype) for x in (ts, hs)] + [jnp.asarray(ms, jnp.int32)]
    args += [jnp.asarray(x, dtype) for x in (eigvals, w1, w2, eps, gamma, tau, n)]
    return _matrix_flow_core(*args, m_static=m_static, precision=precision, form=form,
                             unroll=check_int("unroll", unroll, 1))


# ----------------------------------------------------------------------------------------------
# Reference paths: gradient descent in the data's own basis, from Sigma or from the data matrix


def _rotated_observe(lam, v, w1, w2, eps, gamma, n, mm):
    return _observe_eig(lam, mm(w1, v), mm(v.T, w2), eps, gamma, n, mm)


@functools.partial(jax.jit, static_argnames=("n_saves", "save_every", "precision", "unroll"))
def _matrix_gd_sigma_core(sigma, lam, v, w1, w2, eps, gamma, alpha, n, *, n_saves, save_every, precision,
                          unroll):
    bshape = jnp.broadcast_shapes(w1.shape[:-2], w2.shape[:-2], eps.shape, gamma.shape, alpha.shape)
    mm = _mm(precision)

    def one(w1, w2, eps, gamma, alpha):
        inv_tau, ng = alpha / n, n * gamma

        def step(y):
            d1, d2 = _rhs_sigma(sigma, y[0], y[1], eps, ng, mm)
            return y[0] + inv_tau * d1, y[1] + inv_tau * d2

        observe = lambda y: _rotated_observe(lam, v, y[0], y[1], eps, gamma, n, mm)
        return gd_loop(step, (w1, w2), observe, n_saves=n_saves, save_every=save_every, unroll=unroll)

    flat = [_flat(x, bshape, c) for x, c in ((w1, 2), (w2, 2), (eps, 0), (gamma, 0), (alpha, 0))]
    y, obs = jax.vmap(one)(*flat)
    t = jnp.arange(n_saves + 1, dtype=w1.dtype) * save_every
    return _pack(t, obs, y, bshape)


def _data_loss(w1, w2, x, eps, gamma, mm):
    """The expected loss straight from the data matrix x (N, D), rows are samples (row convention)."""
    nn = x.shape[0]
    recon = mm(mm(x, w1.T), w2.T)
    w = mm(w2, w1)
    return (jnp.sum((x - recon) ** 2) + eps * jnp.sum(w * w)) / (2 * nn) + gamma / 2 * (
        jnp.sum(w1 * w1) + jnp.sum(w2 * w2))


@functools.partial(jax.jit, static_argnames=("n_saves", "save_every", "precision", "unroll"))
def _matrix_gd_data_core(x, lam, v, w1, w2, eps, gamma, alpha, *, n_saves, save_every, precision, unroll):
    bshape = jnp.broadcast_shapes(w1.shape[:-2], w2.shape[:-2], eps.shape, gamma.shape, alpha.shape)
    mm = _mm(precision)
    grad = jax.grad(_data_loss, argnums=(0, 1))
    nn = jnp.asarray(x.shape[0], x.dtype)

    def one(w1, w2, eps, gamma, alpha):
        def step(y):
            g1, g2 = grad(y[0], y[1], x, eps, gamma, mm)
            return y[0] - alpha * g1, y[1] - alpha * g2

        def observe(y):
            mapping, svals, norm, _ = _rotated_observe(lam, v, y[0], y[1], eps, gamma, nn, mm)
            return mapping, svals, norm, _data_loss(y[0], y[1], x, eps, gamma, mm)

        return gd_loop(step, (w1, w2), observe, n_saves=n_saves, save_every=save_every, unroll=unroll)

    flat = [_flat(a, bshape, c) for a, c in ((w1, 2), (w2, 2), (eps, 0), (gamma, 0), (alpha, 0))]
    y, obs = jax.vmap(one)(*flat)
    t = jnp.arange(n_saves + 1, dtype=w1.dtype) * save_every
    return _pack(t, obs, y, bshape)


def _eigh_desc(sigma):
    lam, v = np.linalg.eigh(np.asarray(sigma, np.float64))
    return np.clip(lam[::-1], 0.0, None), v[:, ::-1]


def _reference_checks(d, w1, w2, eps, gamma, alpha, epochs, save_every, precision):
    epochs = check_int("epochs", epochs, 0)
    save_every = check_int("save_every", save_every, 1)
    if epochs % save_every:
        raise ValueError(f"epochs ({epochs}) must be a multiple of save_every ({save_every})")
    _check_weights(d, w1, w2, lead="the data")
    _check_hyper(eps, gamma, 1, alpha=alpha)
    _batch_shape({"w1": (w1, 2), "w2": (w2, 2)}, {"eps": eps, "gamma": gamma, "alpha": alpha})
    return epochs, save_every, check_precision(precision)


def matrix_gd_sigma(sigma: ArrayLike, w1: ArrayLike, w2: ArrayLike, *, n: int, eps: ArrayLike = 0.0,
                    gamma: ArrayLike = 0.0, alpha: ArrayLike, epochs: int, save_every: int = 1,
                    eigvals: ArrayLike | None = None, eigvecs: ArrayLike | None = None, precision=None,
                    unroll: int = 1) -> MatrixTrajectory:
    """Gradient descent on the expected loss from the full second moment Sigma, in the data's basis.

    The same recursion as :func:`matrix_gd` without the rotation: a step costs O(D^2 H) instead of
    O(D H^2). Observables are reported in the eigenbasis (mapping diag(V^T W2 W1 V)).

    Args:
      sigma: (D, D) second moment X^T X (a sum over n samples). w1: (*batch, H, D), w2: (*batch, D, H)
        in the data's basis. n: sample count. eps, gamma, alpha: any batch shape.
      eigvals, eigvecs: the spectrum of sigma (descending); computed with NumPy (float64) if omitted.
    Returns:
      :class:`MatrixTrajectory` (final weights in the data's basis).
    Example:
      >>> sigma = jnp.diag(jnp.array([3.0, 1.0]))
      >>> w1, w2 = orthogonal_init(2, 1, 0.1, 0.1)
      >>> traj = matrix_gd_sigma(sigma, w1, w2, n=1, eps=1.0, alpha=0.1, epochs=300, save_every=300)
      >>> np.round(np.asarray(traj.mapping[-1], np.float64), 4).tolist()
      [0.75, 0.0]
    """
    _finite("sigma", sigma)
    if np.ndim(sigma) != 2 or np.shape(sigma)[0] != np.shape(sigma)[1]:
        raise ValueError(f"sigma must be a square (D, D) matrix; got shape {np.shape(sigma)}")
    d = np.shape(sigma)[0]
    check_range("n", n, 0.0, lo_open=True)
    epochs, save_every, precision = _reference_checks(d, w1, w2, eps, gamma, alpha, epochs, save_every,
                                                      precision)
    if eigvals is None or eigvecs is None:
        eigvals, eigvecs = _eigh_desc(sigma)
    check_range("eigvals", eigvals, 0.0)
    dtype = float_dtype(sigma, w1, w2, eps, gamma, alpha)
    args = [jnp.asarray(a, dtype) for a in (sigma, eigvals, eigvecs, w1, w2, eps, gamma, alpha, n)]
    return _matrix_gd_sigma_core(*args, n_saves=epochs // save_every, save_every=save_every,
                                 precision=precision, unroll=check_int("unroll", unroll, 1))


def matrix_gd_data(x: ArrayLike, w1: ArrayLike, w2: ArrayLike, *, eps: ArrayLike = 0.0,
                   gamma: ArrayLike = 0.0, alpha: ArrayLike, epochs: int, save_every: int = 1,
                   eigvals: ArrayLike | None = None, eigvecs: ArrayLike | None = None, precision=None,
                   unroll: int = 1) -> MatrixTrajectory:
    """Reference: full-batch gradient descent on the expected loss computed from the data matrix.

    The loss is evaluated from ``x`` itself every step, in the data's basis (row convention,
    reconstruction ``x @ W1.T @ W2.T``), and differentiated with ``jax.grad``:

        L = 1/(2N) |X - X W1^T W2^T|^2 + eps / (2N) |W2 W1|^2 + (gamma/2)(|W1|^2 + |W2|^2),

    with N = len(x); ``W <- W - alpha grad L``. Costs O(N D H) per step: the straightforward baseline
    for :func:`matrix_gd`. The reported loss is this data loss; the other observables are in the
    eigenbasis of X^T X (computed with NumPy in float64 unless given).

    Args:
      x: (N, D) data. w1: (*batch, H, D), w2: (*batch, D, H) in the data's basis.
      eps: noise level N s^2; gamma, alpha as for :func:`matrix_gd`.
    Returns:
      :class:`MatrixTrajectory` (final weights in the data's basis).
    Example:
      >>> x = jnp.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])  # Sigma = diag(2, 1), N = 3
      >>> w1, w2 = orthogonal_init(2, 2, 0.1, 0.1)
      >>> traj = matrix_gd_data(x, w1, w2, eps=2.0, alpha=0.3, epochs=1000, save_every=1000)
      >>> np.round(np.asarray(traj.mapping[-1], np.float64), 4).tolist()  # lam / (lam + eps)
      [0.5, 0.3333]
    """
    _finite("x", x)
    if np.ndim(x) != 2:
        raise ValueError(f"x must be an (N, D) data matrix; got shape {np.shape(x)}")
    epochs, save_every, precision = _reference_checks(np.shape(x)[1], w1, w2, eps, gamma, alpha, epochs,
                                                      save_every, precision)
    if eigvals is None or eigvecs is None:
        xn = np.asarray(x, np.float64)
        eigvals, eigvecs = _eigh_desc(xn.T @ xn)
    dtype = float_dtype(x, w1, w2, eps, gamma, alpha)
    args = [jnp.asarray(a, dtype) for a in (x, eigvals, eigvecs, w1, w2, eps, gamma, alpha)]
    return _matrix_gd_data_core(*args, n_saves=epochs // save_every, save_every=save_every,
                                precision=precision, unroll=check_int("unroll", unroll, 1))


# ----------------------------------------------------------------------------------------------
# Initialisations and rotations


def _check_dims(d, h):
    for name, v in (("d", d), ("h", h)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1; got {v!r}")
    return int(d), int(h)


def orthogonal_init(d: int, h: int, d1: ArrayLike, d2: ArrayLike, *, key: Array | None = None,
                    dtype=None) -> tuple[Array, Array]:
    """The decoupling initialisation of section 3.2, in the eigenbasis: Wb1 = R D1, Wb2 = D2 R^T.

    D1 (H x D) and D2 (D x H) are 'diagonal' with entries d1, d2 on their first k = min(H, D)
    diagonal positions, R is an H x H orthogonal matrix (Haar-random from ``key``, or the identity
    when ``key`` is None). Then Wb2 Wb1 = D2 D1 is diagonal and each direction j < k follows the
    scalar dynamics (2)-(3) from (d1_j, d2_j); directions j >= k stay at 0. In the data's basis this
    is W1 = R D1 V^T, W2 = V D2 R^T (:func:`from_eigenbasis`).

    Args:
      d, h: input and hidden sizes (>= 1).
      d1, d2: (*batch, k) or scalars: the diagonal entries.
      key: optional PRNG key for R.
    Returns:
      (Wb1 (*batch, H, D), Wb2 (*batch, D, H)).
    Example:
      >>> w1, w2 = orthogonal_init(3, 2, jnp.array([1.0, 2.0]), 0.5, key=jr.key(0))
      >>> np.round(np.asarray(w2 @ w1), 6).tolist()
      [[0.5, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
    """
    d, h = _check_dims(d, h)
    _finite("d1", d1)
    _finite("d2", d2)
    dtype = dtype or float_dtype(d1, d2)
    return _orthogonal_init_core(jnp.asarray(d1, dtype), jnp.asarray(d2, dtype), key, d=d, h=h)


@functools.partial(jax.jit, static_argnames=("d", "h"))
def _orthogonal_init_core(d1, d2, key, *, d, h):
    k = min(d, h)
    dtype = d1.dtype
    bshape = jnp.broadcast_shapes(d1.shape, d2.shape, (k,))[:-1]
    d1 = jnp.broadcast_to(d1, bshape + (k,))
    d2 = jnp.broadcast_to(d2, bshape + (k,))
    idx = jnp.arange(k)
    big1 = jnp.zeros(bshape + (h, d), dtype).at[..., idx, idx].set(d1)
    big2 = jnp.zeros(bshape + (d, h), dtype).at[..., idx, idx].set(d2)
    if key is None:
        return big1, big2
    g = jr.normal(key, (h, h), dtype)
    q, r = jnp.linalg.qr(g)
    q = q * jnp.where(jnp.diagonal(r) < 0, -1.0, 1.0).astype(dtype)[None, :]  # Haar measure
    q = jnp.broadcast_to(q, bshape + (h, h))
    return (jnp.matmul(q, big1, precision="highest"),
            jnp.matmul(big2, jnp.swapaxes(q, -1, -2), precision="highest"))


def random_init(d: int, h: int, *, scale: ArrayLike, key: Array, dtype=None) -> tuple[Array, Array]:
    """Small Gaussian initialisation: W1, W2 with i.i.d. N(0, scale^2) entries.

    Because V is orthogonal, Gaussian W1 and W2 are also i.i.d. Gaussian in the eigenbasis
    (W1 V, V^T W2), so this draws them there directly. To follow a particular draw made in the
    data's basis (e.g. by ``daedyn.models``), rotate it with :func:`to_eigenbasis` instead.

    Args:
      d, h: input and hidden sizes (>= 1).
      scale: standard deviation (Figure 5: 1e-4), >= 0.
      key: PRNG key (``jr.key``/``jr.PRNGKey``); a batch of keys (e.g. ``jr.split(key, S)``) gives
        a batch of S initialisations.
    Returns:
      (Wb1 (*keys, H, D), Wb2 (*keys, D, H)).
    Example:
      >>> w1, w2 = random_init(5, 3, scale=1e-4, key=jr.split(jr.key(0), 4))
      >>> w1.shape, w2.shape
      ((4, 3, 5), (4, 5, 3))
    """
    d, h = _check_dims(d, h)
    check_range("scale", scale, 0.0)
    if key is None:
        raise ValueError("key is required (an explicit PRNG key)")
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    if not jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jr.wrap_key_data(key)
    dtype = dtype or float_dtype(scale)
    return _random_init_core(key, jnp.asarray(scale, dtype), d=d, h=h)


@functools.partial(jax.jit, static_argnames=("d", "h"))
def _random_init_core(key, scale, *, d, h):
    def draw(k):
        k1, k2 = jr.split(k)
        return scale * jr.normal(k1, (h, d), scale.dtype), scale * jr.normal(k2, (d, h), scale.dtype)

    w1, w2 = jax.vmap(draw)(key.reshape(-1))
    return w1.reshape(key.shape + (h, d)), w2.reshape(key.shape + (d, h))


def to_eigenbasis(w1: ArrayLike, w2: ArrayLike, eigvecs: ArrayLike, *, precision="highest"):
    """(W1 V, V^T W2): data-basis weights to the eigenbasis (eigvecs are the columns of V)."""
    v = jnp.asarray(eigvecs)
    return jnp.matmul(w1, v, precision=precision), jnp.matmul(v.T, w2, precision=precision)


def from_eigenbasis(w1: ArrayLike, w2: ArrayLike, eigvecs: ArrayLike, *, precision="highest"):
    """(Wb1 V^T, V Wb2): eigenbasis weights back to the data's basis."""
    v = jnp.asarray(eigvecs)
    return jnp.matmul(w1, v.T, precision=precision), jnp.matmul(v, w2, precision=precision)
