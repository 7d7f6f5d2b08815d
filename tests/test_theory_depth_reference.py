"""Every branch of the balanced depth-L closed form (daedyn/theory/_deep.py, _deep_solve.py) against
references that share no code with it: SciPy's DOP853 on the L-factor flow (rtol 1e-12), brentq on the
fixed-point equation u^(1-2/L) (lam - u k) = n gamma written out here, and scipy.integrate.quad of the
learning time's integral. The branches: the noise-only decay at lam = 0 (and lam negligible against
eps), pure weight decay (k = 0), eps = 0, weight decay below, near (1 - 1e-3 .. 1 - 1e-6 of the
critical value), at and above the critical value, starts just above / below the learning threshold,
tiny (1e-200), large (50, 1e3) and zero starts, small and large lam.

Cost: the trajectory test shares the compiled depth-3 float64 solver of
tests/test_theory_depth.py::test_depth_trajectory_matches_integration (the same (6, 1) x (24,) shapes);
the root tests compile the root solver once per depth; the learning-time test once."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import quad, solve_ivp
from scipy.optimize import brentq
from theory_reference import Moments

from daedyn import theory


def critical_gamma(lam, eps, depth):
    """(gamma_c, u_pk): the largest weight decay with a learned state, n = 1, and where
    g(u) = u^(1-2/L) (lam - k u) peaks: g'(u) = 0 at u_pk = (L - 2) lam / (2 (L - 1) k)."""
    k = lam + eps
    u = (depth - 2) * lam / (2 * (depth - 1) * k)
    return u ** (1 - 2 / depth) * (lam - k * u), u


def roots(lam, eps, gamma, depth):
    """(learned state, threshold) of g(u) = gamma by brentq on each side of the peak (n = 1):
    (lam / k, 0) without weight decay, (0, inf) past the critical gamma."""
    k = lam + eps
    if gamma == 0:
        return lam / k, 0.0
    gc, u_pk = critical_gamma(lam, eps, depth)
    if gamma >= gc:
        return 0.0, np.inf
    g = lambda u: u ** (1 - 2 / depth) * (lam - k * u) - gamma
    kw = dict(xtol=1e-300, rtol=1e-15)
    return brentq(g, u_pk, lam / k, **kw), brentq(g, 1e-300, u_pk, **kw)


def reference_flow(lam, eps, gamma, w0, ts, depth):
    """u(t) = a(t)^L of tau da/dt = a^(L-1) (lam - a^L k) - gamma a (n = tau = 1), one row at a time
    (so rtol holds per row), DOP853 at rtol 1e-12, restarted at each output time."""
    k = lam + eps
    rhs = lambda _, a: a ** (depth - 1) * (lam - a**depth * k) - gamma * a
    ys = [np.array([w0 ** (1.0 / depth)])]
    for t0, t1 in zip(ts[:-1], ts[1:]):
        sol = solve_ivp(rhs, (t0, t1), ys[-1], method="DOP853", rtol=1e-12, atol=1e-300)
        assert sol.success
        ys.append(sol.y[:, -1])
    return np.concatenate(ys) ** depth


GC3, _ = critical_gamma(1.0, 0.5, 3)  # 0.41274
GC3_EPS0, _ = critical_gamma(2.0, 0.0, 3)  # 0.94494
# lam, eps, gamma, w0: 36 rows and the times of tests/test_theory_depth.py (one compilation for both)
BRANCHES = np.array([
    (0.0, 1.0, 0.0, 0.5), (0.0, 1.0, 0.0, 1e-3),  # lam = 0: the noise-only (algebraic) decay
    (1e-120, 1.0, 0.0, 0.5),  # lam negligible against eps: the same branch
    (0.0, 0.3, 0.2, 0.5),  # lam = 0 with weight decay: no root
    (0.0, 0.0, 0.2, 0.5), (0.0, 0.0, 0.0, 0.5),  # k = 0: pure weight decay; nothing at all
    (1.0, 0.0, 0.0, 1e-5),  # eps = 0, no weight decay
    (1.0, 0.0, 0.1, 1.1e-3), (1.0, 0.0, 0.1, 0.9e-3),  # eps = 0, just above / below the threshold 1.0045e-3
    (1.0, 0.5, 0.99 * GC3, 0.3), (1.0, 0.5, 0.999 * GC3, 0.2),  # near the critical gamma: learned
    (1.0, 0.5, 0.99 * GC3, 0.1),  # near critical, below the threshold 0.133: forgotten
    (1.0, 0.5, GC3, 0.3),  # at the critical gamma (a double root)
    (1.0, 0.5, 1.001 * GC3, 0.3), (1.0, 0.5, 1.01 * GC3, 0.9), (1.0, 0.5, 0.45, 5.0),  # past it
    (1.0, 0.5, 0.0, 50.0), (2.0, 1.0, 0.05, 1e3),  # large starts
    (1.0, 0.5, 0.0, 1e-200), (1.0, 0.5, 0.01, 1e-200),  # tiny starts
    (1e-3, 0.0, 0.0, 1e-2), (30.0, 30.0, 0.0, 1e-4),  # small and large lam
    (0.5, 2.0, 0.01, 0.05), (1.0, 0.5, 0.1, 0.0),  # a generic one; a zero start stays 0
    (2.0, 0.0, 0.99 * GC3_EPS0, 0.5), (2.0, 0.0, 1.001 * GC3_EPS0, 0.5),  # eps = 0 near / past critical
    (0.0, 1.0, 0.0, 1e-200), (0.0, 2.0, 0.0, 50.0), (0.0, 0.5, 0.01, 1e-2),  # more lam = 0
    (1e-12, 1.0, 0.0, 0.5),  # lam small against eps: the table at an extreme scale
    (1.0, 0.5, 0.1, 1e3), (1.0, 0.5, 0.5 * GC3, 0.1),  # decay: a large start, a start between the roots
    (1.0, 0.5, 0.0, 2.0 / 3.0),  # a start on the learned state
    (5.0, 0.0, 0.0, 0.2), (0.2, 5.0, 0.0, 0.01), (3.0, 1.0, 1.0, 0.6),
])
TS = np.array([0.0, 0.5, 2.0, 10.0, 60.0, 400.0])


def test_every_branch_matches_integration(x64):
    lam, eps, gamma, w0 = BRANCHES.T
    ref = np.stack([reference_flow(*row, TS, 3) for row in BRANCHES], axis=1)  # ~3 s on 2 cores
    u = np.asarray(theory.small_init_trajectory(TS[:, None], lam, eps, gamma, w0=w0, depth=3))
    # relative error everywhere (decayed rows reach 1e-227 and stay relative-accurate in the reference,
    # atol 1e-300). Measured <= 1.1e-10 (near and past the critical gamma; <= 1e-11 elsewhere), the
    # reference's own rtol 1e-12 accumulated over the restarts; bound 1e-8 (the depth tests' bound).
    err = np.abs(u - ref) / np.where(ref != 0, np.abs(ref), 1.0)
    worst = np.argmax(np.max(err, axis=0))
    assert np.max(err) <= 1e-8, (BRANCHES[worst].tolist(), float(np.max(err)))
    # the branches reached what they should: a zero start stays 0, k = 0 with gamma = 0 stays put, the
    # near-critical learned rows approach their brentq learned state
    assert u[-1, 23] == 0.0 and u[-1, 5] == 0.5
    np.testing.assert_allclose(u[-1, 9], roots(1.0, 0.5, 0.99 * GC3, 3)[0], rtol=1e-6)


def test_tiny_lam_against_eps_matches_integration(x64):
    # lam from 1e-60 to 1e-16 of lam + eps without weight decay: above the noise-only branch (lam <= 1e-100
    # of k) and a learned state 1e5-1e20 times below the start, so the whole path lies in the tail below
    # the time table (solved in the tail's own values, not as differences of F). The shapes of the test
    # above (one compilation): its rows 27-29 moved.
    rows = BRANCHES.copy()
    rows[27], rows[28], rows[29] = (1e-60, 2.0, 0.0, 1e-3), (1e-16, 1.0, 0.0, 0.5), (1e-30, 1.0, 0.0, 0.5)
    u = np.asarray(theory.small_init_trajectory(TS[:, None], *rows.T[:3], w0=rows[:, 3], depth=3))
    ref = np.stack([reference_flow(*rows[i], TS, 3) for i in (27, 28, 29)], axis=1)
    # measured <= 6e-14 relative (was 9e-5 at 1e-16 and 1e200-fold wrong at 1e-30 before the tail was
    # solved relative to the start); bound 1e-10, the accuracy
    np.testing.assert_allclose(u[:, 27:30], ref, rtol=1e-10, atol=0)


def test_a_start_on_the_stand_in_root_moves(x64):
    # past the critical gamma there is no learned state; the solver's stand-in root is (k / lam)^(1/m) in
    # z, i.e. u = lam / k. A start exactly there was taken for a start on a root and frozen (0.5 at
    # t = 3 where the flow gives 0.1015). The shapes of the tests above (one compilation): rows moved.
    rows = BRANCHES.copy()
    rows[27], rows[28] = (1.0, 1.0, 0.5, 0.5), (2.0, 2.0, 0.9, 0.5)  # gamma past 0.375 resp. 0.75
    u = np.asarray(theory.small_init_trajectory(TS[:, None], *rows.T[:3], w0=rows[:, 3], depth=3))
    ref = np.stack([reference_flow(*rows[i], TS, 3) for i in (27, 28)], axis=1)
    assert np.all(ref[-1] < 1e-3)  # both decay: the check bites
    # measured <= 3.5e-11 relative (down to 1e-258; the last time of row 28 underflows to 0 in both);
    # bound 1e-9
    np.testing.assert_allclose(u[:, 27:29], ref, rtol=1e-9, atol=0)


@pytest.mark.parametrize("depth", [3, 4])
def test_roots_near_and_past_the_critical_gamma(x64, depth):
    # weight decay at fractions of the critical value, for two (lam, eps): below, near (1e-3 .. 1e-6
    # from it), just past and far past
    fractions = np.array([0.0, 0.3, 0.9, 0.99, 0.999, 1 - 1e-6, 1 + 1e-6, 1.01, 2.0])
    lam = np.repeat([1.0, 2.0], fractions.size)
    eps = np.repeat([0.5, 0.0], fractions.size)
    gamma = np.concatenate([fractions * critical_gamma(1.0, 0.5, depth)[0],
                            fractions * critical_gamma(2.0, 0.0, depth)[0]])
    ref = np.array([roots(*args, depth) for args in zip(lam, eps, gamma)])
    fp = np.asarray(theory.fixed_point(lam, eps, gamma, depth=depth))
    th = np.asarray(theory.learning_threshold(lam, eps, gamma, depth=depth))
    # two simple roots: measured <= 2.1e-13 relative, worst at 1 - 1e-6 of the critical gamma where the
    # roots are 2e-3 apart (conditioning 1 / sqrt(1e-6)); bound 1e-11. Past it: exactly 0 and inf.
    np.testing.assert_allclose(fp, ref[:, 0], rtol=1e-11, atol=0)
    np.testing.assert_allclose(th, ref[:, 1], rtol=1e-11, atol=0)
    assert np.all(fp[fractions.size - 3:fractions.size] == 0)  # a wrong peak would move this boundary


def test_root_gradients_match_central_differences(x64):
    # d(learned state)/d gamma and d(threshold)/d gamma through the Newton solve (implicit function
    # theorem), against central differences of the brentq roots (step 1e-7 gamma: truncation
    # ~1e-14 gamma'', rounding 1e-15 / 1e-7 = 1e-8 relative)
    depth, lam, eps = 3, 1.0, 0.5
    gamma = np.array([0.3, 0.9, 0.99, 0.999]) * critical_gamma(lam, eps, depth)[0]
    g_fp, g_th = jax.grad(
        lambda a, b: jnp.sum(theory.fixed_point(lam, eps, a, depth=depth))
        + jnp.sum(theory.learning_threshold(lam, eps, b, depth=depth)), argnums=(0, 1))(gamma, gamma)
    h = 1e-7 * gamma
    fd = np.array([(np.array(roots(lam, eps, g + s, depth)) - roots(lam, eps, g - s, depth)) / (2 * s)
                   for g, s in zip(gamma, h)])
    # measured <= 2e-8 relative (the finite differences' rounding, growing to 1e-3 of critical where
    # the derivative is -13.9 and 13.1); bound 1e-6
    np.testing.assert_allclose(g_fp, fd[:, 0], rtol=1e-6)
    np.testing.assert_allclose(g_th, fd[:, 1], rtol=1e-6)


def test_root_gradient_at_zero_weight_decay(x64):
    # the shapes of the test above (one compilation). One-sided at gamma = 0: the learned state has no
    # gamma in it there ((k / lam)^(1/m)), yet g(u) = u^(1/3) (1 - 1.5 u) = gamma moves it at rate
    # du*/dgamma = 1 / g'(u*) = -1 / (1.5 u*^(1/3)) = -0.763 (u* = 2/3)
    gamma = np.array([0.0, 0.1, 0.2, 0.3])
    g, _ = jax.grad(lambda a, b: jnp.sum(theory.fixed_point(1.0, 0.5, a, depth=3))
                    + jnp.sum(theory.learning_threshold(1.0, 0.5, b, depth=3)), argnums=(0, 1))(gamma, gamma)
    # reference: a one-sided second-order difference of brentq roots, step 1e-7 (truncation ~1e-14,
    # rounding 1e-15 / 1e-7); measured 1.4e-9 relative, bound 1e-7
    h = 1e-7
    u0, u1, u2 = (roots(1.0, 0.5, gamma_i, 3)[0] for gamma_i in (0.0, h, 2 * h))
    fd = (-3 * u0 + 4 * u1 - u2) / (2 * h)
    np.testing.assert_allclose(g[0], fd, rtol=1e-7)
    np.testing.assert_allclose(g[0], -1.0 / (1.5 * (2 / 3) ** (1 / 3)), rtol=1e-12)  # the closed form


def reference_learning_time(f, lam, eps, gamma, w0, depth):
    """Time to reach f times the learned state: the integral of tau du / (L u^(2-2/L) (lam - k u) -
    L gamma u) from w0, by quad in log u (rtol 1e-13); inf where the start is not learned, 0 where it
    starts at or past the level."""
    fp, th = roots(lam, eps, gamma, depth)
    if fp == 0 or w0 <= th:
        return np.inf
    if w0 >= f * fp:
        return 0.0
    k = lam + eps

    def dt_dlogu(s):
        u = np.exp(s)
        return u / (depth * u ** (2 - 2 / depth) * (lam - k * u) - depth * gamma * u)

    return quad(dt_dlogu, np.log(w0), np.log(f * fp), epsabs=0, epsrel=1e-13, limit=500)[0]


def test_learning_time_matches_quadrature(x64):
    cases = np.array([
        (0.5, 1.0, 0.5, 0.0, 1e-3), (0.9, 1.0, 0.0, 0.0, 1e-6), (0.1, 1.0, 0.5, 0.0, 1e-8),  # no decay
        (0.5, 2.0, 1.0, 0.05, 1e-2), (0.5, 1.0, 0.5, 0.1, 2e-3),  # weight decay, above the threshold
        (0.9, 1.0, 0.5, 0.99 * GC3, 0.14), (0.95, 1.0, 0.5, 0.999 * GC3, 0.157),  # near critical
        (0.5, 1.0, 0.5, 0.0, 0.9),  # starts past the level: 0
        (0.5, 1.0, 0.5, 1.01 * GC3, 0.3), (0.5, 1.0, 0.5, 0.1, 5e-4),  # never: past critical, below threshold
    ])
    ref = np.array([reference_learning_time(*c, 3) for c in cases])
    assert np.sum(np.isinf(ref)) == 2 and np.sum(ref == 0) == 1
    f, lam, eps, gamma, w0 = cases.T
    t = np.asarray(theory.learning_time(f, lam, eps, gamma, w0=w0, depth=3))
    # measured <= 3.7e-13 relative (near critical, 87 time units); bound 1e-10
    np.testing.assert_allclose(t, ref, rtol=1e-10, atol=0)


@pytest.mark.slow  # one reverse-mode compilation of the learning-time solver: ~40 s on 2 cores
def test_learning_time_gradient_matches_quadrature(x64):
    cases = np.array([(0.5, 1.0, 0.5, 0.05, 1e-3), (0.5, 2.0, 1.0, 0.05, 1e-2),
                      (0.9, 1.0, 0.5, 0.99 * GC3, 0.14), (0.5, 1.0, 0.5, 0.1, 2e-3)])
    f = cases[:, 0]
    grads = jax.grad(lambda *a: jnp.sum(theory.learning_time(f, a[0], a[1], a[2], w0=a[3], depth=3)),
                     argnums=(0, 1, 2, 3))(*(jnp.asarray(c) for c in cases[:, 1:].T))
    got = np.stack([np.asarray(g) for g in grads], axis=1)
    fd = np.zeros_like(got)
    for i, c in enumerate(cases):
        for j in range(4):
            s = 1e-6 * c[j + 1]
            up, dn = c.copy(), c.copy()
            up[j + 1] += s
            dn[j + 1] -= s
            fd[i, j] = (reference_learning_time(*up, 3) - reference_learning_time(*dn, 3)) / (2 * s)
    # central differences of quad at rtol 1e-13 with a step 1e-6: ~1e-7 relative, more near critical
    # (measured 3e-8 .. 9e-6 at 0.99 of it); bound 1e-4
    np.testing.assert_allclose(got, fd, rtol=1e-4)


def reference_time_gamma_rate(f, lam, eps, w0, depth):
    """The one-sided d t / d gamma at gamma = 0 (n = tau = 1) of the time to reach f times the learned
    state, from t(gamma) = int_{u0}^{f u*(gamma)} du / rate(u; gamma), rate = L u^(2-2/L) (lam - k u) - L
    gamma u: f u*'(0) / rate(f u*; 0) + int_{u0}^{f u*} L u / rate(u; 0)^2 du, u*'(0) = -u*^(2/L) / lam
    (differentiating u*^(1-2/L) (lam - k u*) = gamma); the integral by quad in log u (rtol 1e-13). 0 where
    the start is at or past the level."""
    k = lam + eps
    u_f = f * lam / k
    if w0 >= u_f:
        return 0.0
    rate = lambda u: depth * u ** (2 - 2 / depth) * (lam - k * u)
    integrand = lambda s: depth * np.exp(2 * s) / rate(np.exp(s)) ** 2
    i = quad(integrand, np.log(w0), np.log(u_f), epsabs=0, epsrel=1e-13, limit=500)[0]
    return f * -((lam / k) ** (2 / depth)) / lam / rate(u_f) + i


@pytest.mark.parametrize("depth", [3, pytest.param(4, marks=pytest.mark.slow)])
def test_learning_time_gamma_derivative_at_zero_weight_decay(x64, depth):
    # f, lam, eps, w0 at gamma = 0: small, tiny and mid starts, eps = 0, a start past the level (0)
    cases = np.array([(0.5, 1.0, 0.5, 1e-3), (0.9, 1.0, 0.0, 1e-6), (0.1, 1.0, 0.5, 1e-8),
                      (0.9, 2.0, 0.1, 0.3), (0.5, 1.0, 0.5, 0.9)])
    f, lam, eps, w0 = (jnp.asarray(c) for c in cases.T)
    t = lambda g: theory.learning_time(f, lam, eps, g, w0=w0, depth=depth)
    _, got = jax.jvp(t, (jnp.zeros(len(cases)),), (jnp.ones(len(cases)),))
    ref = np.array([reference_time_gamma_rate(*c, depth) for c in cases])
    assert ref[-1] == 0 and np.all(ref[:-1] > 0)
    # the reference formula itself against Richardson-extrapolated one-sided differences of the quad time,
    # steps that move t by 2e-5 and 1e-5 of itself (quad's 1e-13 over them: 1e-8; measured <= 6e-10)
    for c, r in zip(cases[:-1], ref[:-1]):
        t0 = reference_learning_time(c[0], c[1], c[2], 0.0, c[3], depth)
        d = [(reference_learning_time(c[0], c[1], c[2], h, c[3], depth) - t0) / h
             for h in (2e-5 * t0 / r, 1e-5 * t0 / r)]
        np.testing.assert_allclose(2 * d[1] - d[0], r, rtol=1e-7)
    # automatic differentiation alone gave -0.023 where this is 50.3 (depth 3, row 0); measured <= 8e-15
    # relative (depths 3 and 4) against quad at rtol 1e-13; bound 1e-11
    np.testing.assert_allclose(np.asarray(got), ref, rtol=1e-11, atol=0)
    if depth == 3:  # float32, the default: measured <= 1.5e-6 relative; bound 1e-5
        with jax.enable_x64(False):
            f32 = [jnp.asarray(c, jnp.float32) for c in cases.T]
            t32 = lambda g: theory.learning_time(f32[0], f32[1], f32[2], g, w0=f32[3], depth=depth)
            zero, one = jnp.zeros(len(cases), jnp.float32), jnp.ones(len(cases), jnp.float32)
            _, got32 = jax.jvp(t32, (zero,), (one,))
        assert got32.dtype == jnp.float32
        np.testing.assert_allclose(np.asarray(got32), ref, rtol=1e-5, atol=0)


def reference_gamma_rate(lam, eps, w0, u, depth):
    """The one-sided d u / d gamma at gamma = 0 (n = tau = 1) from differentiating the time equation
    t = int_{u0}^{u} ds / rate(s; gamma): -u^(2-2/L) (lam - k u) int_{u0}^{u} s^(4/L-3) / (lam - k s)^2 ds,
    by quad in v = log|lam - k s| (the pole at the learned state becomes an exponential end; rtol
    1e-13). Needs u != lam / k and u0 != lam / k."""
    k = lam + eps
    sg = np.sign(lam - k * w0)
    s_of = lambda v: (lam - sg * np.exp(v)) / k
    integrand = lambda v: s_of(v) ** (4 / depth - 3) * np.exp(-v) / k
    ends = np.log(abs(lam - k * w0)), np.log(abs(lam - k * u))
    i = quad(integrand, *ends, epsabs=0, epsrel=1e-13, limit=500)[0]
    return u ** (2 - 2 / depth) * (lam - k * u) * i * sg


def reference_sensitivity(lam, eps, w0, ts, depth):
    """d u(t) / d gamma at gamma = 0 from the variational equation of the L-factor flow, integrated with
    it by DOP853 (rtol 1e-13): s = da / dgamma, ds/dt = ((L-1) a^(L-2) lam - (2L-1) a^(2L-2) k) s - a
    (n = tau = 1), u = a^L, du/dgamma = L a^(L-1) s."""
    k = lam + eps

    def rhs(_, y):
        a, s = y
        return [a ** (depth - 1) * (lam - a**depth * k),
                ((depth - 1) * a ** (depth - 2) * lam - (2 * depth - 1) * a ** (2 * depth - 2) * k) * s - a]

    out = [0.0]
    for t in ts[1:]:
        sol = solve_ivp(rhs, (0.0, t), [w0 ** (1.0 / depth), 0.0], method="DOP853", rtol=1e-13,
                        atol=[1e-300, 1e-300], first_step=1e-9 * t)
        assert sol.success
        a, s = sol.y[:, -1]
        out.append(depth * a ** (depth - 1) * s)
    return np.array(out)


# lam, eps, w0: learning from below (the row first), decaying from above (near, far, and toward a
# learned state 1e-12 of lam + eps), the noise-only decay at lam = 0, a start on the learned state
GAMMA0_ROWS = np.array([(1.0, 0.5, 1e-3), (2.0, 1.0, 0.1), (1.0, 0.5, 2.0), (1.0, 0.5, 50.0),
                        (1e-12, 1.0, 0.5), (0.0, 1.0, 0.5), (1.0, 0.5, 2.0 / 3.0)])
GAMMA0_TS = np.array([0.0, 0.05, 0.5, 2.0, 5.0, 10.0, 15.0])  # row 0 at t = 15: u within 2e-7 of lam / k


def check_gamma_derivative_at_zero(depth, quad_bound, sens_bound):
    lam, eps, w0 = GAMMA0_ROWS.T
    f = lambda g: theory.small_init_trajectory(GAMMA0_TS[:, None], lam, eps, g, w0=w0, depth=depth)
    u, got = (np.asarray(a) for a in jax.jvp(f, (jnp.zeros(len(lam)),), (jnp.ones(len(lam)),)))
    ref = np.stack([reference_sensitivity(*row, GAMMA0_TS, depth) for row in GAMMA0_ROWS], axis=1)
    np.testing.assert_allclose(got, ref, rtol=sens_bound, atol=0)
    # the formula by quad where it is defined (u and u0 away from the learned state)
    u_star = lam / (lam + eps)
    away = np.abs(u / np.where(u_star > 0, u_star, 1.0) - 1) > 1e-9
    quad_ok = away & (w0 != u_star) & (GAMMA0_TS[:, None] > 0)
    rows, cols = np.nonzero(quad_ok)
    q = np.array([reference_gamma_rate(*GAMMA0_ROWS[j], u[i, j], depth) for i, j in zip(rows, cols)])
    np.testing.assert_allclose(got[rows, cols], q, rtol=quad_bound, atol=0)
    return u, got


def test_trajectory_gamma_derivative_at_zero_weight_decay(x64):
    """The one-sided d u(t) / d gamma at gamma = 0 (forward mode; one compilation of ~15 s under load on 2
    cores, as the strict xfail it replaces): the no-weight-decay paths have no gamma in them, so the
    closed form attaches this derivative itself (was -1.2e-4 against -0.17559 at the issue's point)."""
    # measured at depth 3: <= 1.4e-12 relative against quad (29 points), <= 1e-13 against the
    # variational equation (the rows at rest, converged and at lam = 0 included); bounds 1e-9
    u, got = check_gamma_derivative_at_zero(3, quad_bound=1e-9, sens_bound=1e-9)
    assert 0 < 1 - u[-1, 0] / (2 / 3) < 1e-6  # row 0 ends within 1e-6 of lam / k (near convergence)
    # the point (lam 1, eps 0.5, w0 1e-3, t = 5) against central differences of the DOP853 flow at
    # gamma = +-1e-5 (O(h^2) ~ 2e-7 relative, measured; the flow's rtol 1e-12 adds 1e-7); bound 1e-5
    h = 1e-5
    ts = np.array([0.0, 5.0])
    flow = lambda gamma: reference_flow(1.0, 0.5, gamma, 1e-3, ts, 3)[-1]
    fd = (flow(h) - flow(-h)) / (2 * h)
    np.testing.assert_allclose(got[4, 0], fd, rtol=1e-5)
    np.testing.assert_allclose(got[4, 0], -0.175595, rtol=1e-5)


@pytest.mark.slow  # two more compilations of the forward-mode solver, ~15 s each under load on 2 cores
@pytest.mark.parametrize("depth", [4, 5])
def test_trajectory_gamma_derivative_at_zero_deeper(x64, depth):
    # measured <= 5.6e-12 (depth 4) and 4.7e-12 (depth 5) relative against quad; bounds 1e-9
    check_gamma_derivative_at_zero(depth, quad_bound=1e-9, sens_bound=1e-9)


# The negative coefficient k < 0 (a diffusion direction's B < 0, reached through noise=): without weight
# decay the closed form is the exact algebraic decay of _deep_negative.negative_trajectory, which has no
# gamma in it; d u / d gamma at gamma = 0 is attached by its custom JVP. k, m, w0, tau, n: small and large
# |k| / m, starts 1e-6 .. 10, and a row with tau = 2, n = 3 (checked as 3 times the n = tau = 1 reference
# at t / 2: the flow depends on t / tau and n gamma only)
NEG_ROWS = np.array([(-0.4, 1.0, 0.2, 1.0, 1.0), (-2.0, 0.5, 1e-4, 1.0, 1.0), (-0.01, 1.0, 1.0, 1.0, 1.0),
                     (-1e-3, 1.0, 1e-6, 1.0, 1.0), (-50.0, 1.0, 10.0, 1.0, 1.0), (-0.3, 2.0, 3.0, 1.0, 1.0),
                     (-0.4, 1.0, 0.2, 2.0, 3.0)])
# t = 1e-4: log(y / y0) ~ 1e-4 (the short-interval form); 300: row 4 has decayed from 10 to 3e-13
NEG_TS = np.array([0.0, 1e-4, 0.05, 0.5, 3.0, 30.0, 300.0])


def negative_reference(depth):
    """d u / d gamma at gamma = 0 of every NEG_ROWS row at NEG_TS by :func:`reference_sensitivity` (the
    L-factor variational equation; lam = k < 0 and eps = m - k there)."""
    return np.stack([n * reference_sensitivity(k, m - k, w0, NEG_TS / tau, depth)
                     for k, m, w0, tau, n in NEG_ROWS], axis=1)


def negative_gamma_jvp(depth, dtype):
    from daedyn.theory._deep_negative import negative_trajectory

    shape = (len(NEG_TS), len(NEG_ROWS))  # negative_trajectory takes arrays of one shape
    cols = (NEG_TS[:, None], *NEG_ROWS.T)
    t, k, m, w0, tau, n = (jnp.broadcast_to(jnp.asarray(c, dtype), shape) for c in cols)
    f = lambda g: negative_trajectory(t, -k, m, w0, tau, depth, gamma=g, n=n)
    jvp = jax.jit(lambda g: jax.jvp(f, (g,), (jnp.ones(shape, dtype),)))  # one compilation (eager: 2.5x)
    return (np.asarray(a, np.float64) for a in jvp(jnp.zeros(shape, dtype)))


@pytest.mark.parametrize("depth", [3, pytest.param(4, marks=pytest.mark.slow),
                                   pytest.param(5, marks=pytest.mark.slow)])
def test_negative_coefficient_gamma_derivative_at_zero_weight_decay(depth):
    """d u / d gamma at gamma = 0 where k < 0 (forward mode through negative_trajectory's custom JVP; 2 s
    on 2 cores at depth 3, its two compilations; depths 4 (M = 2: J's log term) and 5 slow). Was 0."""
    ref = negative_reference(depth)
    assert np.all(ref[1:] < 0)  # weight decay makes u decay faster
    _, d32 = negative_gamma_jvp(depth, jnp.float32)
    with jax.enable_x64(True):
        u, got = negative_gamma_jvp(depth, jnp.float64)
    assert u[-1, 4] < 1e-7  # row 4 decayed from 10 by 13 (depth 3) to 9 (depth 5) orders
    # measured <= 2.2e-14 relative (depths 3-5; the short-interval and series forms, the far-out start)
    # against DOP853 at rtol 1e-13; bound 1e-10, the accuracy
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=0)
    # float32: finite, measured <= 8e-6 relative (the solve's own float32 error); bound 1e-4
    assert np.all(np.isfinite(d32))
    np.testing.assert_allclose(d32, ref, rtol=1e-4, atol=0)


@pytest.mark.slow  # the forward and reverse compilations of the whole signed solver (table included): ~40 s
def test_negative_coefficient_gamma_derivative_through_noise(x64):
    """The same derivative through the public small_init_trajectory(noise=...) (the signed path's wiring),
    in forward and reverse mode; the derivative in k there unchanged (against central differences)."""
    k, m, w0, tau, n = (jnp.asarray(c) for c in NEG_ROWS.T)
    ts = NEG_TS[:, None]
    f = lambda g, k=k: theory.small_init_trajectory(ts, jnp.ones_like(k), gamma=g, w0=w0, tau=tau, n=n,
                                                    depth=3, noise=Moments(k, m))
    zero = jnp.zeros(len(k))
    _, got = jax.jvp(f, (zero,), (jnp.ones(len(k)),))
    np.testing.assert_allclose(np.asarray(got), negative_reference(3), rtol=1e-10, atol=0)  # as above
    rev = jax.grad(lambda g: f(g)[4].sum())(zero)
    np.testing.assert_allclose(np.asarray(rev), np.asarray(got[4]), rtol=1e-14)
    # d u / d k at t = 3 against central differences at k (1 +- 1e-6): measured <= 1.1e-8; bound 1e-6
    _, dk = jax.jvp(lambda x: f(zero, k=x)[4], (k,), (jnp.ones(len(k)),))
    h = 1e-6 * jnp.abs(k)
    cd = (f(zero, k=k + h)[4] - f(zero, k=k - h)[4]) / (2 * h)
    np.testing.assert_allclose(np.asarray(dk), np.asarray(cd), rtol=1e-6)


# ---- second derivatives ------------------------------------------------------------------------
# jax.hessian (forward over reverse) of the depth-L closed forms against second differences of the
# independent references above. Before, every root the solvers find (the learned state, the threshold,
# the time table's inversion) took one last differentiable Newton step from a stopped iterate: exact
# first derivatives, but second ones missing r_xx x'^2 + 2 r_xp x' (d2u/dlam2 0.064 where the flow gives
# 0.091 at lam 1, eps 0.5, w0 0.01, t 5, L = 3; 0.060 against 0.005 with gamma 0.05). The roots now carry
# their derivatives of every order (daedyn._numerics.implicit_root). At gamma = 0 the paths have no gamma
# in them and the rules for d/dgamma are first order: d/dtheta of du/dgamma is exact, while the entries
# that need d2u/dgamma2 or d/dgamma of du/dtheta are NaN (not formed), never silently wrong.

def _second_differences(f, p, h, one_sided=()):
    """Hessian of the scalar f at p by central differences (steps h; forward second-order differences
    along the indices in ``one_sided``, for a parameter at its lower bound)."""
    p, k = np.asarray(p, np.float64), len(p)
    e = [h[i] * np.eye(k)[i] for i in range(k)]

    def d1(q, i):  # df/dp_i at q
        if i in one_sided:
            return (-3 * f(q) + 4 * f(q + e[i]) - f(q + 2 * e[i])) / (2 * h[i])
        return (f(q + e[i]) - f(q - e[i])) / (2 * h[i])

    out = np.empty((k, k))
    for i in range(k):
        for j in range(k):
            if j in one_sided:
                out[i, j] = (-3 * d1(p, i) + 4 * d1(p + e[j], i) - d1(p + 2 * e[j], i)) / (2 * h[j])
            else:
                out[i, j] = (d1(p + e[j], i) - d1(p - e[j], i)) / (2 * h[j])
    return out


def _flow_end(depth):
    """u(t) by DOP853 (rtol 1e-12) for p = (lam, eps, gamma, w0, t); lam may be negative (the signed flow)."""
    return lambda p: reference_flow(p[0], p[1], p[2], p[3], np.array([0.0, p[4]]), depth)[-1]


HESSIAN_CASES = [  # (lam, eps, gamma, w0, t): below the learned state, above it, a negative coefficient
    (1.0, 0.5, 0.05, 1e-2, 5.0),
    (1.0, 0.5, 0.0, 1e-2, 5.0),
    (1.0, 0.5, 0.05, 1.5, 0.7),
    (-0.4, 1.4, 0.0, 0.2, 5.0),
]


@pytest.mark.slow  # the Hessian of the whole solver (tables, tails, both gamma rules) compiles in ~70 s
@pytest.mark.parametrize("depth", [3, 4])
def test_trajectory_second_derivatives_match_integration(x64, depth):
    # one compilation: the four cases as one batch, the Hessian of their sum (the elements are
    # independent, so it is block diagonal: each case's 5 x 5 block is its own Hessian)
    cases = np.array(HESSIAN_CASES)

    def u(p):  # p (4, 5); lam -> the direction's coefficient k, eps -> m - k (the noise= protocol)
        noise = Moments(p[:, 0], p[:, 0] + p[:, 1])
        return jnp.sum(theory.small_init_trajectory(p[:, 4], jnp.ones(4), gamma=p[:, 2], w0=p[:, 3],
                                                    depth=depth, noise=noise))

    hess = np.asarray(jax.hessian(u)(jnp.asarray(cases)))
    for i, p in enumerate(cases):
        h_ad = hess[i, :, i, :]
        zero_gamma = p[2] == 0
        # steps 5e-4 of each value, gamma's 1e-4 (one-sided at 0, where its third derivatives are large:
        # 2e-3 left 1.4% at L = 4): truncation ~1e-7 relative, the ODE's rtol 1e-12 / h^2 ~ 1e-5
        h = np.where(np.arange(5) == 2, 1e-4, 5e-4 * np.abs(p))
        h_fd = _second_differences(_flow_end(depth), p, h, one_sided=(2,) if zero_gamma else ())
        scale = np.abs(h_fd).max()
        if zero_gamma:  # the gamma column is not formed there: NaN; the rest exact
            assert np.isnan(h_ad[:, 2]).all(), h_ad
            h_ad, h_fd = np.delete(h_ad, 2, axis=1), np.delete(h_fd, 2, axis=1)
        # measured <= 7e-6 of the largest entry (the differences' truncation, falling as h^2);
        # before the fix 0.07-0.4 (gamma 0.05: d2u/dlam2 12x too large); bound 1e-4
        np.testing.assert_allclose(h_ad, h_fd, atol=1e-4 * scale, err_msg=f"case {p}")


def test_root_second_derivatives_match_brentq(x64):
    # fixed point and threshold in (lam, eps, gamma) at gamma = 0.05 and (fixed point) at gamma = 0, where
    # the learned state (k / lam)^(1/m) has no gamma in it and its gamma-derivatives come from the root of
    # P with gamma in it; brentq's roots (rtol 1e-15) by second differences, step 1e-4: error ~1e-7
    for gamma in (0.05, 0.0):
        p = np.array([1.0, 0.5, gamma])
        one = (2,) if gamma == 0 else ()
        for which, fn in ((0, theory.fixed_point), (1, theory.learning_threshold)):
            if gamma == 0 and which == 1:
                continue  # no threshold without weight decay (inf)
            h_ad = np.asarray(jax.hessian(lambda q: fn(q[0], q[1], q[2], depth=3))(jnp.asarray(p)))
            h_fd = _second_differences(lambda q: roots(q[0], q[1], q[2], 3)[which], p, np.full(3, 1e-4), one)
            # measured <= 3e-8 of the largest entry; before the fix up to 2x (the learned state's
            # d2/dgamma2 0.67 where brentq gives -0.70); bound 1e-5
            np.testing.assert_allclose(h_ad, h_fd, atol=1e-5 * np.abs(h_fd).max(), err_msg=f"{which} {gamma}")


@pytest.mark.slow  # the Hessian of the learning-time solver compiles in ~60 s on 2 cores
def test_learning_time_second_derivatives_match_quadrature(x64):
    p = np.array([1.0, 0.5, 0.05, 1e-2])
    h_ad = np.asarray(jax.hessian(lambda q: theory.learning_time(0.5, q[0], q[1], q[2], w0=q[3], depth=3))(
        jnp.asarray(p)))
    h_fd = _second_differences(lambda q: reference_learning_time(0.5, *q, 3), p,
                               1e-3 * np.maximum(np.abs(p), 0.01))
    # measured ~1e-6 of the largest entry (quad's rtol 1e-13 / h^2); before the fix d2t/deps2 -2.64
    # where quad gives 0.091; bound 1e-4
    np.testing.assert_allclose(h_ad, h_fd, atol=1e-4 * np.abs(h_fd).max())


def test_float32_reverse_mode_gradients_are_finite_and_right():
    # float32, reverse mode (jax.grad: what the tuners use). The table's integrand evaluated every kind's
    # branch at every node, and the no-root kind's e^(-m phi) overflowed float32 (phi < -30 at L = 3): its
    # infinite partial times the zero cotangent of the branch not taken was NaN, so every depth-L
    # gradient in float32 was NaN (forward mode was fine). Against central differences of DOP853.
    ts = jnp.array([0.5, 2.0, 5.0, 40.0], jnp.float32)
    weights = np.sin(np.arange(1.0, 5.0))
    for gamma in (0.05, 0.0):
        p = np.array([1.0, 0.5, gamma])

        def ours(q):
            u = theory.small_init_trajectory(ts, q[0], q[1], q[2], w0=1e-2, depth=3)
            return jnp.sum(weights.astype(np.float32) * u)

        def ref(q):
            return float(weights @ reference_flow(q[0], q[1], q[2], 1e-2, np.concatenate([[0.0], ts]), 3)[1:])

        g = np.asarray(jax.grad(ours)(jnp.asarray(p, jnp.float32)))
        h = 1e-5
        fd = [(ref(p + h * e) - ref(p - h * e)) / (2 * h) if not (i == 2 and gamma == 0)
              else (-3 * ref(p) + 4 * ref(p + h * e) - ref(p + 2 * h * e)) / (2 * h)
              for i, e in enumerate(np.eye(3))]
        # measured <= 1e-5 relative (float32 rounding of the solve); before: NaN; bound 1e-3
        np.testing.assert_allclose(g, fd, rtol=1e-3, atol=1e-3 * np.abs(fd).max())
