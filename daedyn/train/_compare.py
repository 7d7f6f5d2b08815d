"""A trained linear network next to the small-initialisation theory, direction by direction.

Two predictions are made from each direction's start w0 (:func:`initial_w0`):

- ``continuous``: the paper's closed form :func:`daedyn.theory.small_init_trajectory` (the gradient
  *flow*, tau dw/dt = 2 w (lam - N gamma - (lam + eps) w)).
- ``discrete``: the same balanced start iterated with gradient descent, one step per epoch
  (:func:`daedyn.dynamics.scalar_gd`): what training actually does, Euler step of size 1/tau.

Which to use when: the discrete recursion is the **best prediction** of a gradient-descent run
(:attr:`TheoryComparison.best`). The two agree when alpha lam / N << 1; when alpha lam / N is not
small (mnist5k direction 0: 0.38) the flow runs early by up to ~20% in learning time while the
recursion stays within a few percent, and for alpha lam / N > 1 gradient descent settles into a
2-cycle that only the recursion reproduces. The continuous form is the one to use for analysis
(closed form, any time, differentiable in every argument) and for runs with small steps.
"""

from __future__ import annotations

import functools as ft
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from daedyn import _linear, dynamics, models, theory
from daedyn._checks import check_int, check_range, concrete
from daedyn.schedules import PiecewiseConstant, divided, is_schedule, shift
from daedyn.train._config import Params
from daedyn.train._driver import TrainResult

__all__ = ["W0_KINDS", "AUTHORS_TOP", "initial_w0", "crossing_times", "TheoryComparison",
           "compare_with_theory"]

W0_KINDS = ("balanced", "authors", "mean", "aligned")
ALIGNED_ACTIVE = 64  # directions the alignment model keeps exactly (theory.random_start_mapping)
AUTHORS_TOP = 100  # the authors' code sums the top 100 initial singular values


def initial_w0(params: Params, eigvecs: ArrayLike, *,
               kind: Literal["balanced", "authors", "mean"] = "balanced",
               precision: Any = "highest") -> Array:
    """Initial value w0 per direction for the small-initialisation theory.

    Deep networks (L >= 3 weight matrices): ``"balanced"`` is |diag(V^T W V)|_j of the initial map
    W = W_L ... W_1 (exact for the decoupled start of :func:`daedyn.dynamics.orthogonal_init`),
    ``"authors"`` and ``"mean"`` use the singular values of W.

    ``"balanced"``: each direction's own balanced-equivalent start |u_j + v_j|^2 / 4 with
    u_j = (W1 V)[:, j], v_j = (V^T W2)[j, :]: during training u_j + v_j grows like exp(lam t / tau)
    while u_j - v_j decays, so a direction behaves like the balanced solution started from this w0
    (w = ((|u+v|^2 - |u-v|^2) / 4) at all times). ``"authors"``: the authors' Figure 5 code, one
    value for every direction, the sum of the top min(100, H) initial singular values s of W2 W1
    divided by D (``np.sum(s_int[:100]) / len(s_int)`` with the D singular values of the D x D
    product). ``"mean"``: the mean of the min(H, D) initial singular values (daedyn's earlier
    "shared" w0, D / min(H, D) times larger than "authors" for H <= 100).

    Args:
      params: ``{"w1": (..., H, D), "w2": (..., D, H)}`` in the input basis (batch axes first).
      eigvecs: V of the training Sigma, columns (D, D).
      kind: "balanced", "authors" or "mean".
      precision: matmul precision.
    Returns:
      (D,) array (the shared kinds broadcast to D), with the batch axes of ``params``.
    Raises:
      ValueError: for an unknown ``kind``.
    Example:
      >>> import jax.numpy as jnp
      >>> from daedyn import train
      >>> p = {"w1": jnp.array([[0.2, 0.0]]), "w2": jnp.array([[0.2], [0.0]])}
      >>> [round(w, 6) for w in train.initial_w0(p, jnp.eye(2)).tolist()]  # (0.2 + 0.2)^2 / 4
      [0.04, 0.0]
      >>> [round(w, 6) for w in train.initial_w0(p, jnp.eye(2), kind="authors").tolist()]  # 0.04 / D
      [0.02, 0.02]
    """
    if kind == "aligned":
        raise ValueError("kind='aligned' needs the run (its eigenvalues, rates and epochs): use "
                         "compare_with_theory(result, w0='aligned'), the default at depth >= 3")
    if kind not in W0_KINDS:
        hint = " (renamed: 'mean' is the old 'shared', 'authors' the authors' formula)" \
            if kind == "shared" else ""
        raise ValueError(f"kind must be one of {W0_KINDS}; got {kind!r}{hint}")
    mm = _linear.matmul_fn(precision)
    v = jnp.asarray(eigvecs)
    d = v.shape[0]

    def one(*ws):
        if kind == "balanced" and len(ws) == 2:
            u, vv = _linear.to_eigenbasis(ws, v, mm)  # W1 V (H, D), V^T W2 (D, H)
            return jnp.sum(jnp.square(u + vv.T), axis=0) / 4
        if kind == "balanced":  # deep: |diag(V^T W V)|, exact for the decoupled start
            return jnp.abs(_linear.mapping(_linear.to_eigenbasis(ws, v, mm), mm))
        sv = _linear.svdvals(ws, mm)  # descending, min(H, D) values
        value = jnp.sum(sv[:AUTHORS_TOP]) / d if kind == "authors" else jnp.mean(sv)
        return jnp.full((d,), value, sv.dtype)

    ws = tuple(jnp.asarray(w) for w in models.weights(params))
    f = one
    for _ in ws[0].shape[:-2]:
        f = jax.vmap(f)
    return f(*ws)


def crossing_times(t: ArrayLike, w: ArrayLike, target: ArrayLike, *, fixed_point: ArrayLike | None = None,
                   depth: int = 2) -> Array:
    """First time each column of ``w`` (T, K) reaches ``target`` (K,), located between the two
    records that bracket it.

    With ``fixed_point`` (w*, (K,)) the crossing is located with the per-direction dynamics, so that
    it does not depend on how often the run was saved: between the bracketing records (t_a, w_a) and
    (t_b, w_b) the flow's own time coordinate phi(w) is interpolated linearly and inverted at the
    target, t = t_a + (t_b - t_a) (phi(target) - phi(w_a)) / (phi(w_b) - phi(w_a)). At depth 2,
    phi(w) = log(w / (w* - w)), which the balanced flow tau dw/dt = 2 w (lam - N gamma - (lam + eps) w)
    advances at the constant rate 2 (lam - N gamma) / tau: the located time is then exact whatever
    the spacing (noise and weight decay included). At depth L >= 3, phi(w) = integral of
    (1 + exp(-s))^(1 - 2/L) ds over s = log(w / (w* - w)) (16-point Gauss-Legendre), exact for
    the balanced depth-L flow without weight decay, a close approximation with it. A gradient-descent
    run is not exactly such a flow but is locally one (its sigmoid has another rate), which is what
    the interpolation needs: it uses no rate. Records outside (0, w*) (a start below 0, a step past
    w*) fall back to the straight line between the two records.

    Without ``fixed_point``, the straight line between the two records: biased by the spacing (a
    sigmoid is convex below its midpoint and concave above it, so the chord crosses the target early
    or late by a fraction of the record interval; 4% of the learning time for a logistic learned in
    34 epochs saved every 20).

    Args:
      t: record times (T,), increasing.
      w: trajectories (T, K), one column per direction.
      target: the level (K,) (e.g. fraction * w*), broadcasting.
      fixed_point: w* (K,) of each column's dynamics, > target; None: linear interpolation.
      depth: the network's depth L (number of weight matrices), >= 2.
    Returns:
      (K,) times; NaN where a column never reaches the target within ``t``; ``t[0]`` where it starts
      at or above it.
    Example:
      >>> crossing_times(jnp.array([0.0, 10.0]), jnp.array([[0.0], [1.0]]), jnp.array([0.25])).tolist()
      [2.5]
      >>> w = lambda t: 1 / (1 + 99 * jnp.exp(-t))  # logistic w(t) with w* = 1, w(0) = 0.01
      >>> t = jnp.array([0.0, 10.0])
      >>> round(float(crossing_times(t, w(t)[:, None], jnp.array([0.5]), fixed_point=jnp.array([1.0]))[0]), 4)
      4.5951
      >>> round(float(jnp.log(99.0)), 4)  # the exact crossing time
      4.5951
    """
    check_int("depth", depth, 2)
    t, w = jnp.asarray(t), jnp.asarray(w)
    # one compiled program per shape (about 40 small operations: run eagerly, each compiled on
    # first use, they cost seconds of compilation per new shape for microseconds of work)
    return _crossing_times(t, w, jnp.asarray(target, w.dtype),
                           None if fixed_point is None else jnp.asarray(fixed_point, w.dtype), depth)


@ft.partial(jax.jit, static_argnums=4)
def _crossing_times(t, w, target, fixed_point, depth):
    target = jnp.broadcast_to(target, w.shape[-1:])
    above = w >= target[None, :]
    i = jnp.argmax(above, axis=0)  # first index at or above (0 when never)
    hit = jnp.any(above, axis=0)
    cols = jnp.arange(w.shape[1])
    ip = jnp.maximum(i - 1, 0)
    wa, wb = w[ip, cols], w[i, cols]
    ta, tb = t[ip].astype(w.dtype), t[i].astype(w.dtype)
    span = jnp.where(wb > wa, wb - wa, 1.0)
    share = jnp.clip((target - wa) / span, 0.0, 1.0)  # the straight line
    if fixed_point is not None:
        w_star = jnp.broadcast_to(fixed_point, target.shape)
        share = jnp.where(_inside(wa, wb, target, w_star), _flow_share(wa, wb, target, w_star, depth), share)
    inner = ta + (tb - ta) * share
    out = jnp.where(i == 0, t[0].astype(w.dtype), inner)
    return jnp.where(hit, out, jnp.nan)


def _inside(wa, wb, target, w_star):
    """Where both bracketing records and the target lie strictly inside (0, w*), the flow's domain."""
    return (wa > 0) & (wb > wa) & (wb < w_star) & (target > wa) & (target < w_star)


def _flow_share(wa, wb, target, w_star, depth: int):
    """(phi(target) - phi(w_a)) / (phi(w_b) - phi(w_a)) of :func:`crossing_times`, in (0, 1]; finite
    everywhere (the values outside the flow's domain are replaced by :func:`_inside`'s caller)."""
    ok = _inside(wa, wb, target, w_star)
    one = jnp.ones((), wa.dtype)
    # the double where: the branch not taken stays finite (logs of valid numbers only)
    safe = lambda x, fill: jnp.where(ok, x, fill)
    wa, wb = safe(wa, 0.25 * one), safe(wb, 0.75 * one)
    target, w_star = safe(target, 0.5 * one), safe(w_star, one)
    logit = lambda x: jnp.log(x) - jnp.log(w_star - x)
    sa, sb, st = logit(wa), logit(wb), logit(target)
    if depth == 2:
        return (st - sa) / (sb - sa)
    p = 1.0 - 2.0 / depth
    nodes, weights = np.polynomial.legendre.leggauss(16)
    nodes, weights = jnp.asarray(nodes, wa.dtype), jnp.asarray(weights, wa.dtype)

    def integral(lo, hi):  # integral of (1 + exp(-s))^p = exp(p softplus(-s)) over [lo, hi]
        mid, half = (hi + lo) / 2, (hi - lo) / 2
        s = mid[..., None] + half[..., None] * nodes[None, :]
        return half * jnp.sum(weights[None, :] * jnp.exp(p * jax.nn.softplus(-s)), axis=-1)

    return integral(sa, st) / integral(sa, sb)


class TheoryComparison(NamedTuple):
    """Measured mapping next to the theory (all (..., T, D) except the per-direction (..., D) fields).

    Attributes:
      measured: the recorded per-direction mapping (or sorted singular values for "strength").
      continuous: the continuous-time small-init prediction (daedyn.theory.small_init_trajectory).
      discrete: the same balanced start iterated with gradient descent, one step per epoch
        (daedyn.dynamics.scalar_gd); the best prediction of a gradient-descent run.
      w0: initial value used per direction.
      rmse_continuous, rmse_discrete: RMSE over time per direction.
      fixed_point: w* per direction (daedyn.theory.fixed_point).
      time_measured, time_continuous, time_discrete: first time each trajectory reaches
        ``fraction`` w*, interpolated between records (NaN: not reached, or w* < ``min_fixed_point``).
      time_error_continuous, time_error_discrete: (predicted - measured) / measured learning time.
      alpha_lam_over_n: alpha lam / N per direction (= lam / tau), the Euler step of the recursion:
        the continuous form is accurate when it is << 1.
    """

    measured: Array
    continuous: Array
    discrete: Array
    w0: Array
    rmse_continuous: Array
    rmse_discrete: Array
    fixed_point: Array | None = None
    time_measured: Array | None = None
    time_continuous: Array | None = None
    time_discrete: Array | None = None
    time_error_continuous: Array | None = None
    time_error_discrete: Array | None = None
    alpha_lam_over_n: Array | None = None

    @property
    def best(self) -> Array:
        """The best prediction of a gradient-descent run: :attr:`discrete`."""
        return self.discrete

    def to_xarray(self, t: ArrayLike | None = None, eigvals: ArrayLike | None = None, *, batch_dims=None,
                  coords=None, time_dim: str = "epoch"):
        """The comparison as an ``xarray.Dataset``: ``measured``, ``continuous`` and ``discrete``
        over (``time_dim``, ``direction``), the per-direction fields over ``direction`` (fields
        that were not computed are left out); ``direction`` is a coordinate (0 .. D-1).

        Args:
          t: (T,) the record times (the run's ``result.t``), the ``time_dim`` coordinate.
          eigvals: (D,) the run's lam (``result.eigvals``): the coordinate ``lam`` along
            ``direction``.
          batch_dims, coords: as :meth:`daedyn.train.TrainResult.to_xarray` (batched runs).
          time_dim: name of the record-time dimension (default ``"epoch"``).
        Raises:
          ImportError: xarray (the ``sweep`` extra) is not installed.
        """
        import numpy as np

        from daedyn._xarray import dataset

        series = (time_dim, "direction")
        fields = {k: (getattr(self, k), series) for k in ("measured", "continuous", "discrete")}
        fields.update({k: (getattr(self, k), ("direction",)) for k in self._fields[3:]})
        d = np.shape(self.measured)[-1]
        all_coords = {"direction": np.arange(d), **(coords or {})}
        if eigvals is not None:
            all_coords["lam"] = ("direction", np.asarray(eigvals))
        return dataset(fields, time=None if t is None else (time_dim, t), batch_dims=batch_dims,
                       coords=all_coords, what="TheoryComparison.to_xarray")


def compare_with_theory(result: TrainResult, *, eigvecs: ArrayLike,
                        measure: Literal["mapping", "strength"] = "mapping",
                        w0: Literal["balanced", "authors", "mean", "aligned"] | ArrayLike | None = None,
                        fraction: float = 0.5, min_fixed_point: float = 0.05) -> TheoryComparison:
    """Per-direction theory next to a linear run's measurements: RMSE and learning-time errors.

    The continuous prediction is :func:`daedyn.theory.small_init_trajectory` with the run's
    (tau, eps, gamma, N); the discrete one is :func:`daedyn.dynamics.scalar_gd` from the balanced
    start w1 = w2 = sqrt(w0) with alpha = N / tau, one step per epoch, saved at the run's records
    (the default optimiser's gradient descent; its stability was checked when the run started).
    Use the discrete one (:attr:`TheoryComparison.best`) to predict a gradient-descent run; the
    two coincide when alpha lam / N << 1 (module docstring). ``measure``: "mapping" compares
    diag(V^T W V) per direction j with lam_j; "strength" compares the sorted singular values of
    W2 W1 with the sorted eigenvalues (Figure 5), directions 0..H-1.

    A run trained under schedules (its ``eps``, ``gamma`` or ``tau`` a schedule) is compared with the
    same schedules: the chained closed form (the scheduled RK4 flow for a continuous eps schedule)
    and the scheduled recursion, epoch k with eps(k), gamma(k), alpha(k); its fixed point is the one
    in force at the last record and ``alpha_lam_over_n`` uses the largest alpha
    (any depth: the balanced start's every factor w0^(1/L)).

    Args:
      result: from :func:`~daedyn.train.train` (unbatched) with a linear network.
      eigvecs: V of the training Sigma (for ``w0`` read from the initial weights).
      measure: "mapping" or "strength".
      w0: "balanced" (per direction), "authors" (the authors' shared formula), "mean" (mean
        initial singular value; see :func:`initial_w0`), "aligned" (depth >= 3, constant rates: each
        direction's effective start after the hidden layers align, below) or an explicit array
        broadcasting to (D,), > 0. Default (None): "aligned" for an unscheduled run of depth >= 3,
        "balanced" otherwise.

    ``w0="aligned"``: the run's random start is advanced by the alignment model
    :func:`daedyn.theory.random_start_mapping` (the top 64 directions' paths through the hidden
    layers exactly, the others as a background; docs/depth.md, "From a random start"), and each of
    those directions gets the balanced start whose gradient-descent recursion reaches ``fraction`` of
    its learned value at the epoch the model's direction does (bisection in log w0; a direction the
    model does not learn within the run, or beyond the 64, keeps "balanced"). Measured on mnist5k and
    Fashion-MNIST at depths 3 and 4 (hidden 16, init scales 0.03 / 0.06): learning times within 2.3%
    of training (benchmarks/deep_fidelity.py).
      fraction: learning time = first time a trajectory reaches ``fraction`` of w*, in (0, 1).
      min_fixed_point: directions with w* below this get NaN learning times.
    Returns:
      :class:`TheoryComparison`.
    Raises:
      ValueError: for an unknown ``measure`` or ``w0`` kind, "strength" without singular values,
        w0 <= 0, or ``fraction`` outside (0, 1).
    """
    if measure not in ("mapping", "strength"):
        raise ValueError(f"measure must be 'mapping' or 'strength'; got {measure!r}")
    if result.singular_values is None and measure == "strength":
        raise ValueError("measure='strength' needs a linear run with singular_values recorded")
    check_range("fraction", fraction, 0.0, 1.0, lo_open=True, hi_open=True)
    depth = len(models.weights(result.init_params)) if result.init_params is not None else 2
    if w0 is None:
        w0 = "aligned" if depth > 2 and not is_scheduled(without_one_piece(result)) else "balanced"
    if isinstance(w0, str) and w0 == "aligned":
        w0_arr = _aligned_w0(result, eigvecs, depth, fraction)
    elif isinstance(w0, str):
        w0_arr = initial_w0(result.init_params, eigvecs, kind=w0)
    else:
        check_range("w0", w0, 0.0, lo_open=True)
        w0_arr = jnp.broadcast_to(jnp.asarray(w0), result.eigvals.shape)
    lam = result.eigvals
    if measure == "strength":
        k = result.singular_values.shape[-1]
        measured = result.singular_values
        lam, w0_arr = lam[:k], w0_arr[:k]
    else:
        measured = result.mapping
    dt = measured.dtype
    w0_dt = jnp.asarray(w0_arr, dt)
    n = jnp.asarray(result.n, dt)
    t = jnp.asarray(result.t, dt)
    result = without_one_piece(result)  # a one-piece schedule is compared as its constant
    if is_scheduled(result):  # eps / gamma / tau schedules: the scheduled forms (scheduled_theory below)
        cont, disc, w_star, rate = scheduled_theory(result, lam, w0_dt, t, n, depth)
        return _comparison(t, measured, cont, disc, w0_arr, w_star, rate, fraction, min_fixed_point, depth)
    cont = theory.small_init_trajectory(t[:, None], lam[None, :], result.eps,
                                        result.gamma, w0=w0_dt[None, :], tau=result.tau, n=result.n,
                                        depth=depth)
    epochs = int(result.t[-1] - result.t[0])
    w_star = jnp.asarray(theory.fixed_point(lam, result.eps, result.gamma, n=result.n, depth=depth), dt)
    disc_time = None
    if epochs:  # the balanced start with mapping w0 at any depth: every factor w0^(1/L)
        every = int(result.t[1] - result.t[0])
        disc, disc_time = _recursion_times(jnp.maximum(lam, 0), result.eps, result.gamma,
                                           alpha=n / result.tau, n=n, depth=depth, w0=w0_dt, t=t,
                                           every=every, target=fraction * w_star, w_star=w_star)
    else:
        disc = w0_dt[None]
    rate = jnp.asarray(lam, dt) / jnp.asarray(result.tau, dt)
    meas_time = None
    # the measured crossing located epoch by epoch from the record before it at depth 2, where a
    # direction near its crossing is the balanced recursion from that record's w (u - v has decayed).
    # Not at depth >= 3: a random start's factors stay unbalanced (their differences are conserved),
    # so the balanced recursion from the record's product is not the network's local dynamics
    # (Fashion-MNIST, L = 3: it reached the next record's w in 6.6 of 10 epochs and put direction 0
    # 2.3% early, direction 1 1.0%); there the flow's time coordinate between the records is kept
    # (1.6% and 0.06% at records every 10, 0.6% and 0.005% at every 5).
    if epochs and depth == 2:
        meas_time = _refined_times(measured, jnp.maximum(lam, 0), result.eps, result.gamma,
                                   alpha=n / result.tau, n=n, depth=depth, t=t, every=every,
                                   target=fraction * w_star, w_star=w_star)
    return _comparison(t, measured, cont, disc, w0_arr, w_star, rate, fraction, min_fixed_point, depth,
                       disc_time=disc_time, meas_time=meas_time)


def _recursion_times(lam, eps, gamma, *, alpha, n, depth: int, w0, t, every: int, target, w_star):
    """The balanced recursion from ``w0`` (every factor w0^(1/L)) saved at the records ``t`` (T,), and
    its crossing of ``target`` located epoch by epoch (:func:`_refined_times`). Returns ((T, K)
    records, (K,) times; NaN where the target is never reached)."""
    epochs = (t.shape[0] - 1) * every
    u = w0 ** (1.0 / depth)
    w = dynamics.scalar_gd(lam, eps, u, u, alpha=alpha, epochs=epochs, gamma=gamma, n=n, save_every=every,
                           check_stability=False, depth=depth).w.T  # (K, T) -> (T, K)
    return w, _refined_times(w, lam, eps, gamma, alpha=alpha, n=n, depth=depth, t=t, every=every,
                             target=target, w_star=w_star)


def _refined_times(w, lam, eps, gamma, *, alpha, n, depth: int, t, every: int, target, w_star):
    """Crossing times of the records ``w`` (T, K) located epoch by epoch: the record interval that
    brackets each crossing is rerun at every epoch by the balanced recursion from the record before it
    (for the recursion itself exact: a balanced state stays balanced, so that record's w fixes every
    factor; for a trained depth-2 network close once u - v has decayed), and the crossing is located
    between those epochs (:func:`crossing_times`). Where the rerun does not cross within the interval
    (a record before alignment), the records' own location is kept. The time is then independent of
    the save spacing: on Fashion-MNIST at depth 3 (alpha lam / N = 0.44, direction 0 learned in 22
    epochs) the recursion overshoots w* within a 10-epoch interval and the records alone put its
    crossing up to 2.6 epochs off, non-monotonically in w0."""
    coarse = crossing_times(t, w, target, fixed_point=w_star, depth=depth)
    if every == 1:
        return coarse
    above = w >= target[None, :]
    i = jnp.argmax(above, axis=0)
    ip = jnp.maximum(i - 1, 0)
    wa = w[ip, jnp.arange(w.shape[1])]
    ua = jnp.maximum(wa, jnp.finfo(w.dtype).tiny) ** (1.0 / depth)
    fine = dynamics.scalar_gd(lam, eps, ua, ua, alpha=alpha, epochs=every, gamma=gamma, n=n, save_every=1,
                              check_stability=False, depth=depth).w.T  # (every + 1, K)
    s = crossing_times(jnp.arange(every + 1, dtype=w.dtype), fine, target, fixed_point=w_star, depth=depth)
    use = (i > 0) & (wa > 0) & jnp.isfinite(s) & jnp.isfinite(coarse)
    return jnp.where(use, t[ip] + s, coarse)


def _aligned_w0(result: TrainResult, eigvecs: ArrayLike, depth: int, fraction: float) -> Array:
    """The effective balanced start of ``w0="aligned"`` (:func:`compare_with_theory`), (D,)."""
    if depth < 3:
        raise ValueError("w0='aligned' needs a network of depth >= 3 (at depth 2 'balanced' is exact: the "
                         "two factors need no alignment)")
    if is_scheduled(without_one_piece(result)):
        raise ValueError("w0='aligned' takes a run with constant eps, gamma and alpha (a scheduled run: "
                         "w0='balanced')")
    if result.init_params is None:
        raise ValueError("w0='aligned' needs result.init_params (the run's random start)")
    balanced = initial_w0(result.init_params, eigvecs, kind="balanced")
    epochs = int(np.asarray(result.t[-1] - result.t[0]))
    if not epochs:
        return balanced
    every = int(np.asarray(result.t[1] - result.t[0]))
    res = without_one_piece(result)
    v = jnp.asarray(eigvecs)
    mm = _linear.matmul_fn("highest")
    ws = _linear.to_eigenbasis(tuple(jnp.asarray(w) for w in models.weights(result.init_params)), v, mm)
    lam = jnp.maximum(jnp.asarray(res.eigvals), 0)
    dt = lam.dtype
    t = jnp.asarray(result.t, dt) - jnp.asarray(result.t[0], dt)
    # the model saved at every epoch and the recursion's crossing located epoch by epoch: the matched
    # start does not depend on the save spacing (at 10 epochs between records, a direction learned in
    # 22 epochs had a located recursion time that was not monotone in w0: 5.6% off, Fashion-MNIST)
    model = theory.random_start_mapping(lam, ws, res.eps, res.gamma, tau=res.tau, n=res.n, epochs=epochs,
                                        save_every=1, active=ALIGNED_ACTIVE)
    k = model.shape[1]
    w_star = jnp.asarray(theory.fixed_point(lam[:k], res.eps, res.gamma, n=res.n, depth=depth), dt)
    target = fraction * w_star
    t_model = crossing_times(jnp.arange(epochs + 1, dtype=dt), model, target, fixed_point=w_star, depth=depth)
    alpha = jnp.asarray(res.n, dt) / jnp.asarray(res.tau, dt)

    def time_from(w0):  # the balanced recursion's crossing time; NaN (never) counts as too late
        return _recursion_times(lam[:k], res.eps, res.gamma, alpha=alpha, n=res.n, depth=depth, w0=w0, t=t,
                                every=every, target=target, w_star=w_star)[1]

    lo = jnp.full((k,), np.log(np.finfo(np.dtype(dt)).tiny) / 2, dt)  # log w0 bounds of the bisection
    hi = jnp.log(jnp.maximum(target, jnp.finfo(dt).tiny))
    for _ in range(48):  # halves a range of < 2^6.5 in log w0 to below float rounding
        mid = (lo + hi) / 2
        late = ~(time_from(jnp.exp(mid)) <= t_model)
        lo, hi = jnp.where(late, mid, lo), jnp.where(late, hi, mid)
    matched = jnp.isfinite(t_model) & (t_model > 0) & (w_star > 0)
    w0 = jnp.where(matched, jnp.exp((lo + hi) / 2), balanced[:k])
    return jnp.concatenate([w0, balanced[k:]]).astype(balanced.dtype)


def _comparison(t, measured, cont, disc, w0_arr, w_star, rate, fraction, min_fixed_point,
                depth: int = 2, disc_time=None, meas_time=None) -> TheoryComparison:
    """The errors and learning times of the two predictions against the measurement (``disc_time``,
    ``meas_time``: crossings located epoch by epoch, :func:`_refined_times`)."""
    rmse = lambda a: jnp.sqrt(jnp.mean(jnp.square(a - measured), axis=0))
    keep = w_star >= min_fixed_point
    times = {}
    for name, traj_w in (("measured", measured), ("continuous", cont), ("discrete", disc)):
        # located between the records with the per-direction dynamics: independent of the save spacing
        given = {"discrete": disc_time, "measured": meas_time}.get(name)
        if given is not None:
            crossed = given.astype(traj_w.dtype)
        else:
            crossed = crossing_times(t, traj_w, fraction * w_star, fixed_point=w_star, depth=depth)
        times[name] = jnp.where(keep, crossed, jnp.nan)
    rel = lambda p: (p - times["measured"]) / times["measured"]
    return TheoryComparison(measured=measured, continuous=cont, discrete=disc, w0=w0_arr,
                            rmse_continuous=rmse(cont), rmse_discrete=rmse(disc), fixed_point=w_star,
                            time_measured=times["measured"], time_continuous=times["continuous"],
                            time_discrete=times["discrete"], time_error_continuous=rel(times["continuous"]),
                            time_error_discrete=rel(times["discrete"]), alpha_lam_over_n=rate)


# ----------------------------------------------------------------------------------------------
# A run trained under schedules: the same predictions following its schedules.
#
# The theory side of :func:`daedyn.train.compare_with_theory` for a run trained under schedules (private).
#
# A :class:`~daedyn.train.TrainResult` of ``train(eps=schedule)``, ``train(gamma=schedule)`` or
# ``train(alpha=schedule)`` carries its ``eps``, ``gamma`` and ``tau`` = N / alpha as schedules (in the
# paper's units). The two predictions then follow the same schedules, direction by direction, from
# the balanced start w1 = w2 = sqrt(w0):
#
# - ``continuous``: the chained closed form :func:`daedyn.theory.small_init_trajectory` (exact for
#   piecewise-constant eps, gamma and tau); with a continuous schedule (a ramp, a function; eps, gamma
#   or alpha) the scheduled RK4 flow :func:`daedyn.dynamics.scalar_flow`, with every jump of the
#   piecewise-constant schedules among its time steps (the saves and the jumps form its time grid).
# - ``discrete``: the scheduled recursion :func:`daedyn.dynamics.scalar_gd`: epoch k uses eps(k),
#   gamma(k) and alpha(k) = N / tau(k), the convention of the training loop, so that a marginalised
#   run from the decoupling start equals it to rounding.
#
# Per-direction summaries that need one value: the fixed point is the one in force at the last
# record (eps and gamma there), and ``alpha_lam_over_n`` uses the largest learning rate (the smallest
# tau), the step that decides how far gradient descent is from the flow. A one-piece schedule is its
# constant (the comparison is then that of the constant run, bit for bit). A run that starts at
# ``t[0] > 0`` (``start_epoch``) sees the schedules from there (:func:`daedyn.schedules.shift`).

_SCALAR_W = ("w",)  # the one scalar_gd / scalar_flow observable read here


def is_scheduled(result) -> bool:
    """Whether any of the run's eps, gamma, tau is a schedule."""
    return any(is_schedule(x) for x in (result.eps, result.gamma, result.tau))


def without_one_piece(result):
    """``result`` with every one-piece schedule (no boundary) replaced by its one value, so that it
    is compared exactly as the constant run (bit for bit)."""
    one = lambda x: x.values[0] if isinstance(x, PiecewiseConstant) and x.values.shape[0] == 1 else x
    return result._replace(eps=one(result.eps), gamma=one(result.gamma), tau=one(result.tau))


def _grid(ts: np.ndarray, *xs) -> tuple[np.ndarray, np.ndarray]:
    """The save times with every jump of the piecewise-constant ``xs`` inside (0, ts[-1]) added, and
    the indices of the save times in that grid."""
    jumps = [np.asarray(concrete(x.boundaries), np.float64).ravel() for x in xs
             if isinstance(x, PiecewiseConstant) and concrete(x.boundaries) is not None]
    extra = np.concatenate(jumps) if jumps else np.zeros(0)
    extra = extra[(extra > 0) & (extra < ts[-1])]
    grid = np.union1d(ts, extra)
    return grid, np.searchsorted(grid, ts)


def scheduled_theory(result, lam, w0, t, n, depth: int):
    """(continuous (T, D), discrete (T, D), fixed point (D,), alpha lam / N (D,)) of a scheduled run
    (module docstring). ``lam`` and ``w0`` are the compared directions' (D,), ``t`` the record times."""
    tau = result.tau
    dt = t.dtype
    t0 = float(np.asarray(result.t[0]))
    eps, gamma = result.eps, result.gamma
    if t0:  # a resumed run: the schedules seen from its first record
        eps, gamma, tau = (shift(x, t0) if is_schedule(x) else x for x in (eps, gamma, tau))
    ts = t - jnp.asarray(t0, dt)
    u = jnp.sqrt(w0) if depth == 2 else w0 ** (1.0 / depth)  # the balanced start: every factor w0^(1/L)
    piecewise = all(isinstance(x, PiecewiseConstant) or not is_schedule(x) for x in (eps, gamma, tau))
    if piecewise:  # the chained closed form: exact per piece
        cont = theory.small_init_trajectory(ts[:, None], lam[None, :], eps, gamma, w0=w0[None, :], tau=tau,
                                            n=n, depth=depth)
    else:  # a continuous eps schedule: the scheduled RK4 flow, the jumps of the others on its grid
        grid, at = _grid(np.asarray(ts, np.float64), eps, gamma, tau)
        flow = dynamics.scalar_flow(jnp.asarray(grid, dt), lam, eps, u, u, tau=tau, gamma=gamma, n=n,
                                    depth=depth)
        cont = flow.w.T[at]
    epochs = int(np.asarray(result.t[-1] - result.t[0]))
    if epochs:
        every = int(np.asarray(result.t[1] - result.t[0]))
        alpha = divided(n, tau if is_schedule(tau) else jnp.asarray(tau, dt))  # alpha(t) = N / tau(t)
        traj = dynamics.scalar_gd(jnp.maximum(lam, 0), eps, u, u, alpha=alpha, epochs=epochs, gamma=gamma,
                                  n=n, save_every=every, check_stability=False, observables=_SCALAR_W,
                                  depth=depth)
        disc = traj.w.T  # (D, T) -> (T, D)
    else:
        disc = w0[None]
    t_end = jnp.asarray(result.t[-1], dt)
    at_end = lambda x: x(t_end) if is_schedule(x) else x  # the original schedules: absolute epochs
    w_star = jnp.asarray(theory.fixed_point(lam, at_end(result.eps), at_end(result.gamma), n=result.n,
                                            depth=depth), dt)
    if isinstance(tau, PiecewiseConstant):
        tau_min = jnp.min(tau.values, axis=0)
    elif is_schedule(tau):  # the smallest tau any step of the run uses
        tau_min = jnp.min(tau(jnp.arange(max(epochs, 1), dtype=dt)), axis=0)
    else:
        tau_min = tau
    return cont, disc, w_star, jnp.asarray(lam, dt) / jnp.asarray(tau_min, dt)
