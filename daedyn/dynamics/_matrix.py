"""Full-matrix learning dynamics of a linear (denoising, weight-decayed) autoencoder of any depth.

The network is L >= 2 factor matrices, W = W_L ... W_1 with W_1 (H_1 x D), W_l (H_l x H_{l-1}) and
W_L (D x H_{L-1}); L = 2 is the paper's (W1, W2). Its expected loss (authors' scaling,
docs/CONTRACTS.md)

    L = 1/(2n) [tr(Sigma) - 2 tr(W Sigma) + tr(W Sigma W^T) + tr(W C W^T)] + (gamma/2) sum_l |W_l|^2,

with the corruption term C = eps I (Gaussian noise, eps = n s^2), depends on the data only through
Sigma = V diag(lam) V^T. In the rotated factors Wb_1 = W_1 V and Wb_L = V^T W_L (inner factors
unchanged; section 3.1) its gradient flow, with tau = n / alpha, Q_l = Wb_L ... Wb_{l+1} and
S_l = Wb_{l-1} ... Wb_1, is

    tau dWb_l/dt = Q_l^T (Lam - W (Lam + eps)) S_l^T - n gamma Wb_l,

which needs only the spectrum lam; gradient descent with rate alpha is its Euler step of one epoch.
At depth 2 this is

    tau dWb1/dt = Wb2^T M - n gamma Wb1,    tau dWb2/dt = M Wb1^T - n gamma Wb2,    M = Lam - W (Lam + eps).

**One engine.** :func:`matrix_gd` and :func:`matrix_flow` take the factors as positional arguments
(``matrix_gd(eigvals, w1, w2, *more, ...)``: the depth is their number) and every rate (eps, gamma and
alpha, or tau for the flow) as a number, an array or a :mod:`daedyn.schedules` schedule. One GD core
and one flow core serve every depth and every kind of rate: a constant is a schedule that does not
change. GD step k (epoch k to k + 1) uses eps(k), gamma(k), alpha(k); the flow's right-hand side at t
uses eps(t), gamma(t), 1 / tau(t) through the shared RK4 (:func:`daedyn.dynamics._integrate.rk4_step`:
the stage at a step's end takes the left limit, so a jump on a save time is exact); the observables
saved at t use eps(t), gamma(t). The step is the shared core's (:mod:`daedyn._linear`), vmapped over
the flattened batch inside the time loop (each rate looked up once per step for the whole batch).

A rate's value at one time has the shape the constant would have: a scalar noise level (or one per
batch element) with ``eps_dims=0``, a (..., D) per-direction vector with ``eps_dims=1``, a (..., D, D)
symmetric positive semi-definite matrix V^T C V with ``eps_dims=2`` (masking, covariance noise), at
every depth. Every piece of a (D, D) schedule is validated like a constant term.

Matmul multiply-adds per step at depth 2 (elementwise work is O(D H) or O(D^2)):

- "square" (the M form): W, Wb2^T M, M Wb1^T: 3 D^2 H.
- "gram" / "gram_t": G = Wb2^T Wb2 and K = Wb1 (Lam + eps) Wb1^T (H x H), then G Wb1 (Lam + eps) and
  Wb2 K: 4 D H^2. "gram_t" is the same algebra on the state (Wb1, Wb2^T), both H x D, so that
  no step transposes anything: tau dWb2^T/dt = Wb1 Lam - K Wb2^T - n gamma Wb2^T. It exists for
  two factors only (depth 2).

Gram is cheaper when 4 H < 3 D: H < D (D = 784, H = 256: 2.1e8 vs 4.7e8), square when H >= D.
"auto" picks the faster one (measured once per process for large steps, else by the flop count;
:func:`daedyn._linear.check_form`). "gram" and "square" exist at every depth; "gram_t" on a 2-core
CPU (D = 784, H = 256, 8 settings) was faster than "gram" in isolated step loops but not measurably
in the full driver (benchmarks/matrix_flow.py). The data-matrix path costs O(N D H) per step.

Everything here works for H < D, H = D and H > D, is batched over any leading batch dimensions of
the spectrum, the factors and the rates (seeds and settings), jit-compiled, and takes a matmul
``precision`` (None / "default" / "high" / "highest") passed to every matmul. On GPUs the default
float32 precision is reduced (TF32); validate with "highest" or float64.

Weights here are in the eigenbasis unless a function says otherwise; :func:`to_eigenbasis` and
:func:`from_eigenbasis` rotate.
"""

from __future__ import annotations

import functools
import math
import warnings
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
    check_noise_term,
    check_nonempty,
    check_precision,
    check_range,
    concrete,
    float_dtype,
)
from daedyn._corruption import _is_spectrum, check_eps_dims
from daedyn.dynamics._integrate import fixed_step_loop, gd_loop, step_grid
from daedyn.dynamics._scalar import _step_times, warn_nonfinite, warned
from daedyn.schedules import Function, PiecewiseConstant, cast, dtype_probe, is_schedule, schedule_values

__all__ = ["MatrixTrajectory", "matrix_rhs", "matrix_observables", "matrix_gd", "matrix_flow"]


class MatrixTrajectory(NamedTuple):
    """Observables of a batch of full-matrix runs (any depth) at the save times, plus the final factors.

    Attributes:
      t: (T,) save times in epochs.
      mapping: (*batch, T, D) per-direction mapping diag(V^T W V) = diag(Wb_L ... Wb_1).
      singular_values: (*batch, T, min(H_{L-1}, D)) singular values of W, descending.
      weight_norm: (*batch, T) sum_l |W_l|^2 (Frobenius; rotation-invariant).
      loss: (*batch, T) expected loss L (authors' scaling) including weight decay.
      ws: the L final factors (W_1 (*batch, H_1, D), ..., W_L (*batch, D, H_{L-1})), in the basis the
        run used (the eigenbasis for :func:`matrix_gd` / :func:`matrix_flow`, the data's basis for
        the reference paths).
    Properties:
      w1, w2: the first and the last factor (at depth 2 the paper's W1 and W2). depth: L.
    """

    t: Array
    mapping: Array
    singular_values: Array
    weight_norm: Array
    loss: Array
    ws: tuple

    @property
    def w1(self) -> Array:
        """The first factor (the encoder W_1)."""
        return self.ws[0]

    @property
    def w2(self) -> Array:
        """The last factor (the decoder W_L; W2 at depth 2)."""
        return self.ws[-1]

    @property
    def depth(self) -> int:
        """The number of factors L."""
        return len(self.ws)

    def to_xarray(self, batch_dims=None, coords=None, *, time_dim: str = "epoch"):
        """The run as an ``xarray.Dataset`` (mapping over ``direction``, singular values over
        ``component``, the final factors ``w1`` .. ``wL`` over their own dimensions: ``hidden`` and
        ``input`` at depth 2, ``hidden_1`` .. ``hidden_{L-1}`` beyond;
        :func:`daedyn._xarray.factor_dims`), with the dimension names of :mod:`daedyn.sweep`.

        Args:
          batch_dims: names of the leading batch axes (e.g. ``("eps",)``; unnamed: ``batch``, ...).
          coords: values along named dimensions (e.g. ``{"eps": eps_values}``).
          time_dim: name of the save-time dimension: ``"epoch"`` (the sweeps' name for gradient
            descent and training) or ``"t"`` (their name for the continuous flows).
        Raises:
          ImportError: xarray (the ``sweep`` extra) is not installed.
        """
        from daedyn._xarray import dataset, factor_fields

        return dataset({"mapping": (self.mapping, (time_dim, "direction")),
                        "singular_values": (self.singular_values, (time_dim, "component")),
                        "weight_norm": (self.weight_norm, (time_dim,)), "loss": (self.loss, (time_dim,)),
                        **factor_fields(self.ws)},
                       time=(time_dim, self.t), batch_dims=batch_dims, coords=coords,
                       what="MatrixTrajectory.to_xarray")


# ----------------------------------------------------------------------------------------------
# The state layout of a form: "gram_t" keeps the last factor transposed (depth 2: both H x D)


def _to_state(form, ws):
    ws = tuple(ws)
    return (ws[0], jnp.swapaxes(ws[1], -1, -2)) if form == "gram_t" else ws


def _from_state(form, y):
    return (y[0], jnp.swapaxes(y[1], -1, -2)) if form == "gram_t" else tuple(y)


def _names(depth: int) -> list[str]:
    """The factors' parameter names: w1, w2, ..., wL."""
    return [f"w{l + 1}" for l in range(depth)]


def _auto_form(d: int, hidden) -> str:
    """The flop-count form for the widest hidden layer (any depth)."""
    return core.choose_form(d, max(hidden))


def matrix_rhs(eigvals: ArrayLike, w1: ArrayLike, w2: ArrayLike, *more: ArrayLike, eps: ArrayLike = 0.0,
               gamma: ArrayLike = 0.0, n: ArrayLike = 1, precision=None) -> tuple[Array, ...]:
    """tau times dWb_l/dt for every factor in the eigenbasis (section 3.1 plus weight decay); one run.

    Args:
      eigvals: (D,) eigenvalues of Sigma. w1, w2, *more: the factors (depth 2: w1 (H, D) = W1 V,
        w2 (D, H) = V^T W2). eps: a scalar, (D,) or (D, D) corruption term. gamma, n: scalars.
        precision: matmul precision.
    Example:
      >>> d1, d2 = matrix_rhs(jnp.array([2.0, 1.0]), 0.5 * jnp.eye(1, 2), 0.5 * jnp.eye(2, 1))
      >>> d1.tolist()  # direction 0: w2 lam (1 - w) = 0.5 * 2 * 0.75
      [[0.75, 0.0]]
    """
    lam, ws = jnp.asarray(eigvals), tuple(jnp.asarray(w) for w in (w1, w2, *more))
    form = _auto_form(ws[0].shape[-1], [w.shape[-2] for w in ws[:-1]])
    return core.rhs(ws, lam, jnp.asarray(eps), ng=jnp.asarray(n) * gamma,
                    mm=core.matmul_fn(check_precision(precision)), form=form)


def matrix_observables(eigvals: ArrayLike, w1: ArrayLike, w2: ArrayLike, *more: ArrayLike,
                       eps: ArrayLike = 0.0, gamma: ArrayLike = 0.0, n: ArrayLike = 1, precision=None):
    """(mapping (D,), singular values (min(H_{L-1}, D),), weight norm, expected loss) of one eigenbasis
    state of any depth.

    The loss uses the spectrum only: 1/(2n)[sum lam - 2 sum_j lam_j m_jj + sum_ij M_ij^2 (lam_j + eps)]
    + (gamma/2) sum_l |W_l|^2, with M = Wb_L ... Wb_1.

    Example:
      >>> m, s, norm, loss = matrix_observables(jnp.array([2.0, 1.0]), jnp.eye(1, 2), jnp.eye(2, 1))
      >>> m.tolist(), s.tolist(), float(norm), float(loss)  # direction 1 unlearned: loss 1 / 2
      ([1.0, 0.0], [1.0], 2.0, 0.5)
    """
    lam, ws = jnp.asarray(eigvals), tuple(jnp.asarray(w) for w in (w1, w2, *more))
    return core.observe(ws, lam, jnp.asarray(eps), n=n, gamma=gamma,
                        mm=core.matmul_fn(check_precision(precision)))


# ----------------------------------------------------------------------------------------------
# Validation and batching


def _check_weights(d: int, ws, lead: str = "eigvals") -> tuple[int, ...]:
    """Shapes and values of the factors; returns the hidden widths (H_1, ..., H_{L-1})."""
    ws = tuple(ws)
    depth, names = len(ws), _names(len(ws))
    shapes = [np.shape(w) for w in ws]
    if depth == 2 and (len(shapes[0]) < 2 or len(shapes[1]) < 2):
        raise ValueError(f"w1 must be (..., H, D) and w2 (..., D, H); got shapes {shapes[0]} and {shapes[1]}")
    for name, s in zip(names, shapes, strict=True):
        if len(s) < 2:
            raise ValueError(f"{name} must be a (..., rows, columns) matrix; got shape {s}")
    hidden = tuple(int(s[-2]) for s in shapes[:-1])
    for l, h in enumerate(hidden):
        size = "H" if depth == 2 else f"H_{l + 1}"
        if h < 1:
            raise ValueError(f"the hidden size {size} ({names[l]}.shape[-2]) must be >= 1; got {h}")
    want = [(h, c) for h, c in zip(hidden + (d,), (d,) + hidden, strict=True)]
    if any(s[-2:] != w for s, w in zip(shapes, want, strict=True)):
        if depth == 2:
            spec = "w1 (..., H, D), w2 (..., D, H)"
        else:
            spec = (f"w1 (..., H_1, D), w2 (..., H_2, H_1), ..., {names[-1]} (..., D, H_{depth - 1}) "
                    f"(each factor's columns are the previous one's rows)")
        got = ", ".join(f"{name} {s}" for name, s in zip(names, shapes, strict=True))
        raise ValueError(f"shapes must be {spec} with D = {d} from {lead}; got {got}")
    for name, w in zip(names, ws, strict=True):
        check_finite(name, w)
    return hidden


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


def _pack(t, obs, ws, bshape):
    """The trajectory from batch-first (B, T, ...) observables and flat (B, ...) final factors."""
    mapping, svals, norm, loss = _unflat(obs, bshape)
    return MatrixTrajectory(t, mapping, svals, norm, loss, tuple(_unflat(tuple(ws), bshape)))


def _stand_ins(name: str, x, ts, *, pick=np.max, positive: bool = False, each: bool = False,
               fill: float = 0.0) -> tuple[list, bool]:
    """Concrete arrays standing for a rate in the checks (shape, ranges, the stability warning), and
    whether its values are traced: ``[x]`` for a constant; for a schedule ``pick`` over its values
    after checking their range (the largest eps, gamma or alpha, the strictest for the stability
    check; the smallest tau), or with ``each`` every value (the pieces of a (D, D) term, each checked
    as a constant term by the caller: its off-diagonal entries may be negative); ``fill`` of the
    value's shape when the values are traced (shapes only)."""
    if not is_schedule(x):
        return [x], False
    v = schedule_values(name, x, ts)
    if v is None:
        return [np.full(x.shape, fill)], True
    v = np.asarray(v, np.float64)
    if each:
        return list(v), False
    check_range(f"{name} schedule values", v, 0.0, lo_open=positive)
    return [pick(v, axis=0)], False


class _Run(NamedTuple):
    """What the checks resolved: the static layout of the run and the rates' stand-ins."""

    precision: object
    d: int
    hidden: tuple
    form: str
    dtype: object
    bshape: tuple
    eps_cs: list  # one stand-in per checked piece of eps (every piece of a (D, D) schedule)
    gamma_c: object
    rate_c: object
    traced: bool  # a schedule's values are traced: no stability check


def _prepare(eigvals, ws, eps, gamma, n, precision, form, eps_dims, ts, **rate) -> _Run:
    """Every check of :func:`matrix_gd` and :func:`matrix_flow` (``rate``: alpha= or tau=), on
    stand-ins of the scheduled rates, before anything compiles."""
    (rate_name, rate_value), = rate.items()
    precision = check_precision(precision)
    if np.ndim(eigvals) < 1:
        raise ValueError("eigvals must have shape (..., D)")
    check_nonempty("eigvals", np.shape(eigvals)[-1], "D = eigvals.shape[-1]")
    check_range("eigvals", eigvals, 0.0)
    d = int(np.shape(eigvals)[-1])
    hidden = _check_weights(d, ws)
    depth = len(ws)
    eps_cs, t1 = _stand_ins("eps", eps, ts, each=eps_dims == 2)
    (gamma_c,), t2 = _stand_ins("gamma", gamma, ts)
    (rate_c,), t3 = _stand_ins(rate_name, rate_value, ts, pick=np.max if rate_name == "alpha" else np.min,
                               positive=True, fill=1.0)
    for eps_c in eps_cs:  # every piece of a scheduled (D, D) term must be a valid constant term
        eps_dims = check_eps_dims(eps_c, eps_dims, d)
        _check_hyper(eps_c, gamma_c, n, eps_dims=eps_dims, **{rate_name: rate_c})
    eps_shape = np.shape(eps_cs[0])
    eps_c = np.empty(eps_shape[:len(eps_shape) - eps_dims], np.bool_)
    _batch_shape({"eigvals": (eigvals, 1), **{k: (w, 2) for k, w in zip(_names(depth), ws, strict=True)}},
                 {"eps": eps_c, "gamma": gamma_c, rate_name: rate_c, "n": n})
    bshape = tuple(np.broadcast_shapes(np.shape(eigvals)[:-1], *(np.shape(w)[:-2] for w in ws),
                                       eps_c.shape, np.shape(gamma_c), np.shape(rate_c), np.shape(n)))
    dtype = float_dtype(eigvals, *ws, *(dtype_probe(x) for x in (eps, gamma, rate_value)))
    rates = (("eps", eps), ("gamma", gamma), (rate_name, rate_value))
    consts = {k: x for k, x in rates if not is_schedule(x)}
    check_fit(dtype, eigvals=eigvals, n=n, **dict(zip(_names(depth), ws, strict=True)), **consts)
    if form == "gram_t" and depth != 2:
        raise ValueError(f"form='gram_t' needs depth 2: it keeps the state (W_1, W_2^T), two H x D factors, "
                         f"and a network of {depth} factors has no such layout; use 'gram', 'square' or "
                         f"'auto'")
    uniform = len(set(hidden)) == 1  # the measurement times one width for every hidden layer
    measure = dict(dtype=dtype, batch=math.prod(bshape), precision=precision, transposed_ok=True)
    form = core.check_form(form, d, max(hidden), depth, measure=measure if uniform else None)
    return _Run(precision, d, hidden, form, dtype, bshape, eps_cs, gamma_c, rate_c, t1 or t2 or t3)


def _stability(eigvals, h, eps, gamma, alpha, n, w1=None, w2=None, eps_dims=0, epochs=None):
    """Warn for the learned (top min(H, D)) directions whose GD step cannot settle at the fixed point
    or overshoots from the start (depth 2: supplement D's Hessian). The start of direction j is
    summarised by the norms of its column of Wb1 and its row of Wb2 (exact for the decoupled start of
    section 3.2, a proxy otherwise); a per-direction noise term by eps_j (exact for a diagonal term);
    a (D, D) term, when the per-direction check passes, also by the largest Hessian eigenvalue of the
    coupled loss (:func:`daedyn._linear.check_coupled_stability`)."""
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
    c1, c2 = (None, None) if w1 is None or w2 is None else (concrete(w1), concrete(w2))
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


def _piecewise_stability(eigvals, h, eps, gamma, alpha, n, w1, w2, eps_dims, epochs, ts):
    """:func:`_stability` of scheduled rates, piece by piece: the rates in force together from each
    step where one of them changes (``dynamics._scalar._step_times``), each also at the start's weights
    (a jump early in a run meets weights near the start); one warning, for the worst piece, naming the
    epoch it starts at (the largest value of each rate is not the strictest: more weight decay lowers
    the curvature)."""
    times = _step_times(epochs, ts, eps, gamma, alpha)
    if times is None:
        return None
    at = lambda x, t: concrete(x(jnp.asarray(float(t)))) if is_schedule(x) else x  # noqa: E731
    worst = (-np.inf, None, None, None)  # (edge, epoch, edges, warnings)
    for i, t in enumerate(times):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            edge = _stability(eigvals, h, at(eps, t), at(gamma, t), at(alpha, t), n, w1, w2,
                              eps_dims=eps_dims, epochs=epochs)
        if edge is None:
            return None
        top = float(np.max(np.where(np.isnan(edge), np.inf, edge)))
        if i == 0 or (top > worst[0] and top >= 2):
            worst = (top, int(t), edge, caught)
    for w in worst[3]:
        if issubclass(w.category, core.UnstableStepWarning):
            warnings.warn(f"with the rates in force from epoch {worst[1]} (the worst of the {len(times)} "
                          f"pieces of the schedules): {w.message}", w.category, stacklevel=3)
    return worst[2]


# ----------------------------------------------------------------------------------------------
# The two cores: one GD loop and one RK4 flow for every depth and every kind of rate


def _lookup(x, bshape, ncore, dtype):
    """``at(t, left=False)``: a rate at the scalar time t (its left limit with ``left``), broadcast to
    the batch and flattened, (B, *core). A constant is flattened once, outside the time loop."""
    if is_schedule(x):
        return lambda t, left=False: _flat(jnp.asarray(x.left_limit(t) if left else x(t), dtype), bshape,
                                           ncore)
    flat = _flat(jnp.asarray(x, dtype), bshape, ncore)
    return lambda t, left=False: flat


def _observer(form, mm):
    """The observables of the flattened batch (vmapped over its runs)."""
    return jax.vmap(lambda y, lam, e, g, n: core.observe(_from_state(form, y), lam, e, n=n, gamma=g, mm=mm))


def _batch_first(obs):
    return jax.tree_util.tree_map(lambda a: jnp.moveaxis(a, 0, 1), obs)  # (T, B, ...) -> (B, T, ...)


@functools.partial(jax.jit, static_argnames=("bshape", "n_saves", "save_every", "precision", "form",
                                             "unroll", "eps_dims"))
def _gd_core(lam, ws, eps, gamma, alpha, n, *, bshape, n_saves, save_every, precision, form, unroll,
             eps_dims):
    dtype = lam.dtype
    mm = core.matmul_fn(precision)
    lam, n = _flat(lam, bshape, 1), _flat(n, bshape, 0)
    eps_at, gamma_at, alpha_at = (_lookup(x, bshape, c, dtype) for x, c in ((eps, eps_dims), (gamma, 0),
                                                                             (alpha, 0)))
    step_b = jax.vmap(lambda y, lam, e, g, a, n: core.gd_step(y, lam, e, n=n, gamma=g, alpha=a, mm=mm,
                                                              form=form))
    observe_b = _observer(form, mm)

    def step(carry):  # step k (epoch k to k + 1) uses the rates at t = k
        y, k = carry
        t = k.astype(dtype)  # exact up to 2**24 epochs in float32
        return step_b(y, lam, eps_at(t), gamma_at(t), alpha_at(t), n), k + 1

    def observe(carry):
        y, k = carry
        t = k.astype(dtype)
        return observe_b(y, lam, eps_at(t), gamma_at(t), n)

    y0 = _to_state(form, (_flat(w, bshape, 2) for w in ws))
    (y, _), obs = gd_loop(step, (y0, jnp.zeros((), jnp.int32)), observe, n_saves=n_saves,
                          save_every=save_every, unroll=unroll)
    t = jnp.arange(n_saves + 1, dtype=dtype) * save_every
    return _pack(t, _batch_first(obs), _from_state(form, y), bshape)


@functools.partial(jax.jit, static_argnames=("bshape", "m_static", "precision", "form", "unroll",
                                             "eps_dims"))
def _flow_core(ts, hs, ms, lam, ws, eps, gamma, tau, n, *, bshape, m_static, precision, form, unroll,
               eps_dims):
    dtype = lam.dtype
    mm = core.matmul_fn(precision)
    lam, n = _flat(lam, bshape, 1), _flat(n, bshape, 0)
    eps_at, gamma_at, tau_at = (_lookup(x, bshape, c, dtype) for x, c in ((eps, eps_dims), (gamma, 0),
                                                                           (tau, 0)))
    rhs_b = jax.vmap(lambda y, lam, e, g, ta, n: tuple(
        d / ta for d in core.rhs(y, lam, e, ng=n * g, mm=mm, form=form)))
    observe_b = _observer(form, mm)

    def f(t, y, left):  # the shared RK4's time-dependent field: the stage at a step's end is a left limit
        return rhs_b(y, lam, eps_at(t, left), gamma_at(t, left), tau_at(t, left), n)

    def observe(t, y):
        return observe_b(y, lam, eps_at(t), gamma_at(t), n)

    y0 = _to_state(form, (_flat(w, bshape, 2) for w in ws))
    y, obs = fixed_step_loop(f, y0, observe, hs, ms, m_static, unroll=unroll, ts=ts)
    return _pack(ts, _batch_first(obs), _from_state(form, y), bshape)


# ----------------------------------------------------------------------------------------------
# The public drivers


class _Scale(NamedTuple):
    """Raw masking in the matrix engines: the run is inverted masking for the factors s^(1/L) W_l
    (s = 1 - p; docs/corruption.md), so alpha and tau scale by s^(2/L), gamma by s^(-2/L)."""

    s: float
    depth: int

    @property
    def f(self) -> float:
        return self.s ** (2 / self.depth)

    def rate(self, x, power: float):
        """x * f**power of a constant or a schedule (piecewise: piece by piece)."""
        c = self.f ** power
        if isinstance(x, PiecewiseConstant):
            return PiecewiseConstant(x.boundaries, x.values * c)
        if is_schedule(x):
            return Function((x, jnp.asarray(c)), _times)
        return x * c if isinstance(x, int | float) else jnp.asarray(x) * c

    def back(self, traj: MatrixTrajectory) -> MatrixTrajectory:
        """The trajectory of the network itself from that of the rescaled one (the loss is the same)."""
        root = self.s ** (1 / self.depth)
        return traj._replace(mapping=traj.mapping / self.s, singular_values=traj.singular_values / self.s,
                             weight_norm=traj.weight_norm / self.f, ws=tuple(w / root for w in traj.ws))


def _times(t, x, c):
    return x(t) * c


def _matrix_noise(func: str, eigvals, eps, eps_dims: int, noise, n, depth: int):
    """(eigvals, eps, eps_dims, scale) with a corruption value ``noise`` resolved to its term in the
    eigenbasis (``eigvals`` a Spectrum where the term needs the data's basis); ``scale`` is the raw
    mask's :class:`_Scale` (None otherwise)."""
    spectrum = _is_spectrum(eigvals)
    lam = jnp.asarray(eigvals.eigvals) if spectrum else eigvals
    if noise is None:
        return lam, (0.0 if eps is None else eps), eps_dims, None
    if eps is not None:
        raise ValueError(f"{func}: give the noise once, as eps= (a term or schedule) or noise= (a corruption "
                         f"value), not both")
    if not hasattr(noise, "marginal_term"):
        raise ValueError(f"noise must be a corruption value (daedyn.noise.gaussian(...), masking(...), ...); "
                         f"got {type(noise).__name__}")
    if getattr(noise, "kind", None) in ("gaussian", "laplace", "custom"):  # isotropic: a scalar term
        return lam, noise.marginal_term(n=n), 0, None
    if not spectrum:
        raise ValueError(f"{func}: noise {noise.kind!r} has a term in the data's basis: pass the data's "
                         f"daedyn.spectrum.Spectrum as eigvals (it gives V), not the eigenvalues alone")
    term = noise.marginal_term(eigvals, n, basis="eigen")  # (D, D) or a schedule of them (raises if none)
    scale = None
    if not getattr(noise, "rescale", True):
        if getattr(noise, "scheduled", False):
            raise ValueError(f"{func}: raw masking (rescale=False) with a scheduled p: its cross moment "
                             f"K = (1 - p(t)) Sigma changes with time, which the matrix engines' fixed K "
                             f"cannot express; train it exactly with daedyn.train (marginalised=True), or "
                             f"use inverted masking")
        s = concrete(noise.mean_scale)
        if s is None or np.ndim(s):
            raise ValueError(f"{func}: raw masking needs one concrete p (a scalar); got {noise.p!r}")
        scale = _Scale(float(s), depth)
    return lam, term, 2, scale


def matrix_gd(eigvals: ArrayLike, w1: ArrayLike, w2: ArrayLike, *more: ArrayLike, eps=None, gamma=0.0,
              alpha, n: ArrayLike, epochs: int, save_every: int = 1, noise=None, precision=None,
              form: str = "auto", unroll: int = 1, check_stability: bool = True,
              eps_dims: int = 0) -> MatrixTrajectory:
    """Full-batch gradient descent on the expected loss, in the eigenbasis of Sigma (spectrum only),
    for L >= 2 factor matrices (the depth is the number of factors given).

    One step (one epoch) is ``Wb_l <- Wb_l + (alpha / n) * RHS_l`` with the eigenbasis right-hand
    sides of the module docstring; this is exactly gradient descent with rate alpha on L, rotated by V.

    Args:
      eigvals: (*batch, D) eigenvalues of Sigma = X^T X (a sum), >= 0, descending by convention.
      w1, w2, *more: the initial factors in the eigenbasis. Depth 2: w1 (*batch, H, D) = W1 V and
        w2 (*batch, D, H) = V^T W2. Depth L: w1 (*batch, H_1, D) = W_1 V, the inner factors
        (*batch, H_l, H_{l-1}), the last (*batch, D, H_{L-1}) = V^T W_L (:func:`orthogonal_init`,
        :func:`random_init` make them for any depth).
      eps: the corruption term in the eigenbasis: the noise level n s^2 >= 0 (``eps_dims=0``), a
        per-direction (*batch, D) vector eps_j >= 0 (``eps_dims=1``) or a (*batch, D, D) symmetric
        positive semi-definite matrix V^T C V (``eps_dims=2``; e.g. ``noise.masking(p).marginal_term``
        of the spectrum), in the paper's (summed) scaling; default 0. gamma: weight decay, >= 0.
        alpha: learning rate, > 0. n: number of samples N, > 0. (All: any batch shape.)
        ``eps``, ``gamma`` and ``alpha`` may each be a :mod:`daedyn.schedules` schedule of any kind
        whose value has the constant's shape (a (D, D) schedule: ``piecewise_constant(...,
        matrix=True)``): step k (epoch k to k + 1) uses eps(k), gamma(k), alpha(k), as
        :func:`scalar_gd` does; the loss saved at t uses eps(t), gamma(t) (docs/schedules.md).
      epochs, save_every: steps and spacing of saves (epochs a multiple of save_every; t = 0 saved).
      noise: instead of ``eps``, a corruption value: isotropic noise (:func:`daedyn.noise.gaussian`,
        term n s^2), or one with a term in the data's basis (masking, a covariance; then ``eigvals``
        is the data's :class:`daedyn.spectrum.Spectrum`), constant or scheduled. Raw masking
        (``rescale=False``, K = (1 - p) Sigma) runs as inverted masking of the factors
        (1 - p)^(1/L) W_l with alpha (1 - p)^(2/L), gamma (1 - p)^(-2/L), mapped back (exact; a
        scheduled raw p is refused). Salt-and-pepper is refused (affine mean).
      precision: matmul precision for every matmul. form: "auto" (the faster form), "gram" (4 D H^2
        multiply-adds per step at depth 2), "square" (the M form, 3 D^2 H) or, at depth 2 only,
        "gram_t" (the gram algebra on the state (Wb1, Wb2^T)); see the module docstring.
        unroll: steps per loop iteration (speed only).
      check_stability: warn when alpha * h_max >= 2 for a learned direction (depth 2: supplement D's
        Hessian at the balanced fixed point and at the start; a vector or matrix eps enters through
        its diagonal eps_j, a matrix also through the coupled Hessian; a schedule by its largest
        values, every piece of a (D, D) schedule). Not checked at depth L >= 3 (as
        :func:`scalar_gd`); a run that diverges still warns (non-finite end).
      eps_dims: trailing dimensions of ``eps`` that are one run's corruption term: 0 (scalar, the
        default), 1 ((D,) diagonal) or 2 ((D, D) matrix); leading ones are batch dimensions.
    Returns:
      :class:`MatrixTrajectory` (final factors in ``ws``; ``w1`` / ``w2`` the first and last); the
      batch shape is the broadcast of all batch dimensions.
    Raises:
      ValueError: negative eigenvalues/eps/gamma, alpha <= 0, n <= 0, D < 1 or a width < 1, NaN or
        inf, values outside the range of the dtype, factor shapes that do not chain, form="gram_t"
        at depth >= 3, bad schedule values (named "<rate> schedule values").
    Example:
      >>> lam = jnp.array([3.0, 2.0, 1.0])
      >>> from daedyn.dynamics import orthogonal_init
      >>> w1, w2 = orthogonal_init(3, 2, 0.1, 0.1)
      >>> traj = matrix_gd(lam, w1, w2, eps=1.0, alpha=0.1, n=1, epochs=500, save_every=250)
      >>> np.round(np.asarray(traj.mapping[-1], np.float64), 3).tolist()  # lam / (lam + eps), H = 2
      [0.75, 0.667, 0.0]
      >>> ws = orthogonal_init(3, (2, 2), 0.3)  # depth 3, every factor 0.3 on the diagonal
      >>> traj = matrix_gd(lam, *ws, eps=1.0, alpha=0.1, n=1, epochs=600, save_every=300)
      >>> np.round(np.asarray(traj.mapping[-1], np.float64), 3).tolist(), traj.depth
      ([0.75, 0.667, 0.0], 3)
    """
    ws = (w1, w2, *more)
    epochs = check_int("epochs", epochs, 0)
    save_every = check_int("save_every", save_every, 1)
    if epochs % save_every:
        raise ValueError(f"epochs ({epochs}) must be a multiple of save_every ({save_every})")
    eigvals, eps, eps_dims, scale = _matrix_noise("matrix_gd", eigvals, eps, eps_dims, noise, n, len(ws))
    if scale is not None:
        traj = matrix_gd(eigvals, *(scale.rate(w, 0.5) for w in ws), eps=eps, gamma=scale.rate(gamma, -1),
                         alpha=scale.rate(alpha, 1), n=n, epochs=epochs, save_every=save_every,
                         precision=precision, form=form, unroll=unroll, check_stability=check_stability,
                         eps_dims=eps_dims)
        return scale.back(traj)
    ts = np.arange(epochs // save_every + 1) * save_every
    run = _prepare(eigvals, ws, eps, gamma, n, precision, form, eps_dims, ts, alpha=alpha)
    eps_dims = check_eps_dims(run.eps_cs[0], eps_dims, run.d)
    edge = None
    if check_stability and len(ws) == 2 and not run.traced:
        h = min(run.hidden[0], run.d)
        if any(is_schedule(x) for x in (eps, gamma, alpha)):
            edge = _piecewise_stability(eigvals, h, eps, gamma, alpha, n, w1, w2, eps_dims, epochs, ts)
        else:
            edge = _stability(eigvals, h, eps, gamma, alpha, n, w1, w2, eps_dims=eps_dims, epochs=epochs)
    eps, gamma, alpha = (cast(x, run.dtype) for x in (eps, gamma, alpha))
    lam, n = (jnp.asarray(x, run.dtype) for x in (eigvals, n))
    ws = tuple(jnp.asarray(w, run.dtype) for w in ws)
    traj = _gd_core(lam, ws, eps, gamma, alpha, n, bshape=run.bshape, n_saves=epochs // save_every,
                    save_every=save_every, precision=run.precision, form=run.form,
                    unroll=check_int("unroll", unroll, 1), eps_dims=eps_dims)
    return warn_nonfinite("matrix_gd", traj, already_warned=warned(edge))


def matrix_flow(ts: ArrayLike, eigvals: ArrayLike, w1: ArrayLike, w2: ArrayLike, *more: ArrayLike, eps=None,
                gamma=0.0, tau, n: ArrayLike, dt: float, noise=None, precision=None, form: str = "auto",
                unroll: int = 1, eps_dims: int = 0) -> MatrixTrajectory:
    """The continuous gradient flow of the module docstring for L >= 2 factors, with fixed-step RK4.

    Steps are at most ``dt`` epochs and land exactly on each save time (see :func:`scalar_flow`).

    Args:
      ts: (T,) save times (epochs), >= 0, non-decreasing; the run starts at t = 0.
      eigvals, w1, w2, *more, eps, gamma, n, noise, precision, form, unroll, eps_dims: as for
        :func:`matrix_gd` (any depth; "gram_t" at depth 2 only; raw masking: tau / (1 - p)^(2/L)).
      tau: time constant n / alpha, > 0. dt: largest RK4 step in epochs, > 0.
        ``eps``, ``gamma`` and ``tau`` may be schedules of any kind: the right-hand side at t uses
        eps(t), gamma(t), 1 / tau(t) (a tau schedule N / alpha(t) is the flow of a learning-rate
        schedule). An RK4 step from t to t + h evaluates t, t + h/2 and the left limit at t + h
        (the shared :func:`daedyn.dynamics._integrate.rk4_step`), so a jump on a save time is exact:
        put a piecewise schedule's jumps among ``ts``.
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
    ws = (w1, w2, *more)
    eigvals, eps, eps_dims, scale = _matrix_noise("matrix_flow", eigvals, eps, eps_dims, noise, n, len(ws))
    if scale is not None:
        traj = matrix_flow(ts, eigvals, *(scale.rate(w, 0.5) for w in ws), eps=eps,
                           gamma=scale.rate(gamma, -1), tau=scale.rate(tau, -1), n=n, dt=dt,
                           precision=precision, form=form, unroll=unroll, eps_dims=eps_dims)
        return scale.back(traj)
    ts_c = concrete(ts)
    run = _prepare(eigvals, ws, eps, gamma, n, precision, form, eps_dims,
                   ts_c if ts_c is not None else np.zeros(1), tau=tau)
    eps_dims = check_eps_dims(run.eps_cs[0], eps_dims, run.d)
    ts, hs, ms, m_static = step_grid(ts, dt)
    check_fit(run.dtype, ts=ts)
    eps, gamma, tau = (cast(x, run.dtype) for x in (eps, gamma, tau))
    args = [jnp.asarray(x, run.dtype) for x in (ts, hs)] + [jnp.asarray(ms, jnp.int32)]
    lam, n = (jnp.asarray(x, run.dtype) for x in (eigvals, n))
    traj = _flow_core(*args, lam, tuple(jnp.asarray(w, run.dtype) for w in ws), eps, gamma, tau, n,
                      bshape=run.bshape, m_static=m_static, precision=run.precision, form=run.form,
                      unroll=check_int("unroll", unroll, 1), eps_dims=eps_dims)
    return warn_nonfinite("matrix_flow", traj)
