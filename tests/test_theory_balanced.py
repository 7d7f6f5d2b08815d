"""daedyn.theory, the balanced small start (daedyn/theory/_balanced.py): small_init_trajectory
against an independent float64 integration, long times, gradients, learning_time, bad input."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from theory_reference import reference_flow  # tests/ is on sys.path

from daedyn import theory

SI_LAM = [0.5, 1.0, 2.5]
SI_EPS = [0.0, 1.0]
SI_GAMMA = [0.0, 0.3, 1.0, 2.0]  # with n = 1: lam - n gamma > 0, = 0 (lam = 1), < 0
SI_W0 = [1e-6, 0.04, 1.7]  # tiny, moderate, above the fixed point
SI_GRID = np.array(list(itertools.product(SI_LAM, SI_EPS, SI_GAMMA, SI_W0, [1.0, 2.0])))


def test_small_init_matches_integration(x64):
    lam, eps, gamma, w0, n = SI_GRID.T
    ts = np.array([0.0, 0.1, 1.0, 3.0, 7.0, 15.0, 30.0])
    r1, r2 = reference_flow(lam, eps, np.sqrt(w0), np.sqrt(w0), ts, gamma=gamma, n=n)
    ref = r1 * r2
    w = theory.small_init_trajectory(ts[:, None] * 2.0, lam, eps, gamma, w0=w0, tau=2.0, n=n)
    # relative error (the balanced trajectory never changes sign); the reference decays to ~1e-40 for
    # n gamma > lam, where it is still relative-accurate (atol = 1e-300). Measured 3e-12; bound 1e-8.
    np.testing.assert_allclose(w, ref, rtol=1e-8, atol=0)


def test_small_init_float32_and_long_times():
    lam, eps, gamma, w0, n = (jnp.asarray(v, jnp.float32) for v in SI_GRID.T)
    t = jnp.asarray([0.0, 1e3, 1e6, 1e9], jnp.float32)[:, None]
    w = theory.small_init_trajectory(t, lam, eps, gamma, w0=w0, n=n)
    assert w.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(w)))
    fp = theory.fixed_point(lam, eps, gamma, n)
    # a >= 0 at t >= 1e3: converged to the fixed point (0 for n gamma >= lam, reached like 1/t when
    # n gamma = lam: at 1e6 it is 1e-6 / k); float32 rounding, so 1e-6 relative + 1e-6 absolute.
    np.testing.assert_allclose(w[2:], jnp.broadcast_to(fp, w[2:].shape), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(w[0], jnp.broadcast_to(w0, w[0].shape))


@pytest.mark.parametrize("gamma", [0.4, 1.0, 2.0])  # lam - n gamma > 0, = 0, < 0 (all interior:
# the finite differences must not step out of gamma >= 0)
def test_small_init_check_grads(gamma, x64):
    f = lambda t, lam, eps, g, w0: theory.small_init_trajectory(t, lam, eps, g, w0=w0, tau=10.0)
    # step 1e-6: w0 = 1e-2 is small, so the default step 1e-4 is too coarse for d2w/dw0^2
    check_grads(f, (30.0, 1.0, 0.7, gamma, 1e-2), order=2, modes=("rev",), eps=1e-6)


def test_small_init_gamma_derivative_continuous_through_lam_equals_n_gamma(x64):
    # STYLE.md: abs() would flip dw/dgamma at lam = n gamma; the where-form must not.
    g = jax.grad(lambda gam: theory.small_init_trajectory(20.0, 1.0, 0.5, gam, w0=0.05, tau=5.0))
    d = 1e-7
    left, mid, right = float(g(1.0 - d)), float(g(1.0)), float(g(1.0 + d))
    # smooth function: the derivative moves by O(d) across the switch (1e-5 covers it 100x)
    assert abs(left - mid) < 1e-5 and abs(right - mid) < 1e-5



def test_learning_time_inverts_small_init(x64):
    f = jnp.array([0.1, 0.5, 0.9, 0.999])[:, None]
    lam, eps, gamma, w0 = jnp.array([0.5, 1.0, 2.5, 1.0]), jnp.array([0.0, 1.0, 5.0, 0.2]), \
        jnp.array([0.0, 0.3, 0.5, 0.1]), jnp.array([1e-6, 1e-3, 0.01, 1e-8])
    t = theory.learning_time(f, lam, eps, gamma, w0=w0, tau=4.0, n=2.0)
    w = theory.small_init_trajectory(t, lam, eps, gamma, w0=w0, tau=4.0, n=2.0)
    # round trip through log and exp: float64, 1e-10 relative
    np.testing.assert_allclose(w, np.asarray(f) * np.asarray(theory.fixed_point(lam, eps, gamma, n=2.0)),
                               rtol=1e-10)
    # already there: 0; never learned (n gamma >= lam) or the saddle (w0 = 0): inf
    assert float(theory.learning_time(0.5, 1.0, 1.0, w0=0.4)) == 0.0
    assert float(theory.learning_time(0.5, 1.0, 0.0, 1.0, w0=0.1)) == np.inf
    assert float(theory.learning_time(0.5, 1.0, 0.0, w0=0.0)) == np.inf



def test_small_init_and_learning_time_bad_input():
    with pytest.raises(ValueError, match="gamma must"):
        theory.small_init_trajectory(1.0, 1.0, 0.0, -0.1, w0=0.1)
    with pytest.raises(ValueError, match="w0 must"):
        theory.small_init_trajectory(1.0, 1.0, w0=-0.1)
    for f in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match=r"fraction must lie in \(0, 1\)"):
            theory.learning_time(f, 1.0, w0=0.1)
