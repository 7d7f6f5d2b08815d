"""The hypergradient of the chained depth-2 closed form under piecewise-constant schedules: the piece
map's partial derivatives in closed form (``theory._balanced._logistic_piece``, a custom JVP) against
reverse mode through the unchanged ``_logistic`` and against central differences, per piece and chained
over the pieces of eps, gamma and tau (learning-rate) schedules, boundaries and times included."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from daedyn import schedules, theory, tune
from daedyn.theory._balanced import _logistic, _logistic_piece, _small_init_trajectory_impl


def _regimes():
    """(s, a, k, w0) over the regimes of the piece map: growth and decay with 2|a|s from 1e-4 (the
    series of the partials) through 0.05, 0.5, 5 and 60 to 900 (e^-900 underflows), a = 0, k = 0, the
    saddle w0 = 0, a start at the fixed point a / k and above it."""
    rows = []
    for x in (1e-4, 0.05, 0.5, 5.0, 60.0, 900.0):
        for sign in (1.0, -1.0):
            for w0 in (1e-6, 0.3, 2.0):
                rows.append((0.5, sign * x, 1.7, w0))  # s = 0.5: a = +-x
    rows += [(2.0, 0.0, 1.3, 0.2), (0.7, -0.4, 0.0, 0.5), (1.0, 0.8, 1.6, 0.5), (0.3, 2.0, 1.0, 0.0),
             (0.3, -2.0, 1.0, 0.0), (3.0, 0.02, 4.0, 1e-3)]
    return [jnp.asarray(c, jnp.float64) for c in zip(*rows, strict=True)]


def _partials(fn, args):
    """Each element's four partial derivatives (the map is elementwise: the gradient of the sum)."""
    return jax.jit(jax.grad(lambda *a: jnp.sum(fn(*a)), argnums=(0, 1, 2, 3)))(*args)


def test_piece_values_and_partials_match_reference(x64):
    args = _regimes()
    assert np.array_equal(_logistic_piece(*args), _logistic(*args))  # the primal is _logistic itself
    got = _partials(_logistic_piece, args)
    ref = _partials(_logistic, args)  # reverse mode through the unchanged branches and series
    s, a, k, w0 = args
    w = jnp.abs(_logistic(*args))
    # each partial's size of terms: both sides round at ~ eps times it (reverse mode through
    # 2 w (a - k w) rounds to ~1e-14 where the true d/ds is 1e-21, past the fixed point)
    scales = (2 * w * (jnp.abs(a) + k * w), 2 * s * w * (1 + 2 * s * k * w), 2 * s * w * (w + w0),
              w / jnp.where(w0 > 0, w0, 1.0))
    for name, g, r, scale in zip("s a k w0".split(), got, ref, scales, strict=True):
        # measured: |difference| <= 5.0e-16 of the scale (and 1.4e-15 relative wherever the partial
        # is not itself below its rounding); bound 1e-14 of the scale
        assert np.all(np.abs(g - r) <= 1e-14 * scale), name


def test_piece_partials_match_central_differences(x64):
    args = [np.asarray(a) for a in _regimes()]
    keep = ~((args[3] == 0) & (args[1] * args[0] > 100))  # the saddle past underflow: a jump, no slope
    args = [jnp.asarray(a[keep]) for a in args]
    got = _partials(_logistic_piece, args)
    for i, name in enumerate("s a k w0".split()):
        h = 1e-6 * jnp.maximum(jnp.abs(args[i]), 1e-3)
        up = [a + h if j == i else a for j, a in enumerate(args)]
        dn = [a - h if j == i else a for j, a in enumerate(args)]
        fd = (_logistic(*up) - _logistic(*dn)) / (2 * h)
        # central differences, relative step 1e-6 in float64: truncation ~ h^2 and rounding
        # ~ eps |w| / h (where the partial is ~1e-22, past the fixed point, the difference is that
        # rounding); measured 4.1e-9 relative at most; bound 1e-6 with an absolute floor of 8 eps |w| / h
        floor = 8 * np.finfo(np.float64).eps * jnp.abs(_logistic(*args)) / h
        assert np.all(np.abs(got[i] - fd) <= 1e-6 * np.abs(fd) + floor), name


_N = 4.0  # module constants in NumPy float64 (jnp arrays made at import would be float32)
_LAM = np.array([0.0, 0.3, 1.5, 6.0, 40.0])  # a = lam - N gamma changes sign across the pieces
_W0 = np.array([1e-3, 0.2, 1e-4, 0.5, 1e-6])
_B = np.array([20.0, 50.0, 90.0])
_TS = np.array([3.0, 25.0, 45.0, 80.0, 130.0])  # one time per direction, in pieces 0, 1, 1, 2, 3
_COEF = np.array([1.0, -2.0, 0.5, 3.0, 1.0])


def _scheduled(eps_v, gam_v, tau_v, b, ts):
    w = theory.small_init_trajectory(ts, _LAM, schedules.PiecewiseConstant(b, eps_v),
                                     schedules.PiecewiseConstant(b, gam_v), w0=_W0,
                                     tau=schedules.PiecewiseConstant(b, tau_v), n=_N)
    return jnp.sum(_COEF * w)


def _reference(eps_v, gam_v, tau_v, b, ts):
    """:func:`_scheduled` by a Python loop over the pieces, each the constant-eps closed form (the
    unchanged ``_small_init_trajectory_impl``, reverse mode through its branches) from the mapping
    at the piece's start, for the time elapsed in the piece: ``clip(min(t, end) - start, 0)``, 0 in the
    pieces after a direction's time (``w(0) = w0`` exactly)."""
    edges = jnp.concatenate([jnp.zeros(1), b, jnp.full(1, jnp.inf)])
    w = jnp.asarray(_W0)
    for j in range(b.shape[0] + 1):
        elapsed = jnp.maximum(jnp.minimum(ts, edges[j + 1]) - edges[j], 0.0)
        w = _small_init_trajectory_impl(elapsed, _LAM, eps_v[j], gam_v[j], w, tau_v[j], _N)
    return jnp.sum(_COEF * w)


def _point(zeros=True):
    """eps and gamma with zero pieces (``zeros``), else all positive (central differences step both
    ways); gamma 0.075 puts a = lam - N gamma = 0 exactly in the second direction's second piece."""
    eps = [0.5, 2.0, 0.0 if zeros else 1e-3, 1.0]
    gamma = [0.0 if zeros else 1e-3, 0.075, 0.5, 0.01]
    return jnp.array(eps), jnp.array(gamma), jnp.array([20.0, 5.0, 40.0, 8.0]), _B, _TS


def test_chained_hypergradient_matches_reference_chain(x64):
    """eps, gamma and tau pieces, the boundaries and the times: the chained closed form's gradient
    against reverse mode through a Python loop of the unchanged constant-eps closed form."""
    args = _point()
    assert abs(float(_scheduled(*args)) - float(_reference(*args))) <= 1e-14 * abs(float(_reference(*args)))
    got = jax.grad(_scheduled, argnums=tuple(range(5)))(*args)
    ref = jax.grad(_reference, argnums=tuple(range(5)))(*args)
    for name, g, r in zip(("eps", "gamma", "tau", "boundaries", "t"), got, ref, strict=True):
        # measured 2.6e-15 relative at most (the same float64 products in another order); bound 1e-12
        scale = float(jnp.max(jnp.abs(r)))
        np.testing.assert_allclose(g, r, rtol=1e-12, atol=1e-12 * scale, err_msg=name)


def test_chained_hypergradient_matches_central_differences(x64):
    # jax.test_util.check_grads: reverse mode against central differences with step 1e-6 in float64,
    # its own tolerance for float64 (rtol = atol = 1e-5 scaled by the size of the directional derivative)
    check_grads(_scheduled, _point(zeros=False), order=1, modes=("rev",), eps=1e-6)


@pytest.mark.slow  # ~5 s on the loaded 2-core CPU (the objective and its gradient compile); the chained
# tests above cover the same tau (clock), gamma and boundary derivatives at the theory level
def test_schedule_objective_hypergradients_match_central_differences(x64):
    """The tuned gamma and alpha (a change of clock) schedules of ``schedule_objective_fn`` on the
    closed form (K = 4), every regime of the piece map on one small spectrum."""
    lam = np.array([40.0, 20.0, 9.0, 4.0, 1.0, 0.2])
    proj = np.array([9.0, 4.5, 2.5, 0.8, 0.4, 0.3])
    p = tune.problem_from_spectrum(lam, proj, n=50, n_heldout=10, dtype=jnp.float64)
    r = tune.ScheduleRoute(pieces=4, epochs=200.0, tune_gamma=True, tune_alpha=True, alpha_max=1.0)
    f = jax.jit(tune.schedule_objective_fn(p, r, alpha=0.05, eval_sigma2=0.1))
    params = {"eps": jnp.array([3.0, 0.5, 9.0, 1.0]), "gamma": jnp.array([0.01, 0.3, 0.05, 1e-3]),
              "alpha": jnp.array([0.05, 0.1, 0.02, 0.3])}
    check_grads(lambda *v: f(dict(zip(params, v, strict=True))), tuple(params.values()), order=1,
                modes=("rev",), eps=1e-6)  # as above: check_grads' float64 tolerance


def test_traced_out_of_range_values_and_boundaries(x64):
    """Traced inputs out of range give NaN where they act, finite values elsewhere: a negative eps piece
    shared by every direction (kept (P, 1), not broadcast) makes all NaN; one direction's negative
    piece (values (P, D)) makes that direction NaN only; boundaries out of order make the times in the
    pieces after a negative-length piece NaN, the earlier ones unchanged."""
    lam, ts = jnp.asarray(_LAM[1:]), jnp.array([10.0, 30.0, 60.0, 100.0])

    @jax.jit
    def w(b, eps_v, gam_v):
        return theory.small_init_trajectory(ts, lam, schedules.PiecewiseConstant(b, eps_v),
                                            schedules.PiecewiseConstant(b, gam_v), w0=1e-3, tau=10.0, n=_N)

    b, gam = jnp.array([20.0, 50.0, 90.0]), jnp.array([0.0, 0.075, 0.5, 0.01])
    good = w(b, jnp.array([0.5, 2.0, 0.0, 1.0]), gam)
    assert np.all(np.isfinite(good))
    assert np.all(np.isnan(w(b, jnp.array([0.5, -2.0, 0.0, 1.0]), gam)))
    per_dir = jnp.tile(jnp.array([0.5, 2.0, 0.0, 1.0])[:, None], (1, 4)).at[1, 2].set(-1.0)
    got = w(b, per_dir, gam)
    assert np.isnan(got[2]) and np.array_equal(np.delete(got, 2), np.delete(good, 2))
    got = w(jnp.array([20.0, 70.0, 50.0]), jnp.array([0.5, 2.0, 0.0, 1.0]), gam)  # piece 2: 70 -> 50
    # t = 100 lies after the negative piece: NaN; t = 10, 30 before it: unchanged (t = 60 is placed by
    # searchsorted on the unsorted boundaries: in piece 1, finite; as before this change)
    assert np.array_equal(got[:2], good[:2]) and np.isfinite(got[2]) and np.isnan(got[3])
