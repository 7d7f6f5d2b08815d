"""daedyn.theory with noise= (a value giving a direction's (k, m), k of any sign): the balanced
solution at depths 1-4 with and without weight decay, and Eq. (5) from any start, against solve_ivp of
the scalar flows; the negative-k decay at depth >= 3 (incomplete-beta time, series evaluation) and its
gradient against finite differences."""

import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from scipy.integrate import solve_ivp
from theory_reference import Moments

from daedyn import theory

TS = np.array([0.0, 0.3, 3.0, 30.0, 300.0])
CASES = [(0.7, 1.0, 0.0, 1e-3), (-0.4, 1.0, 0.0, 0.2), (-2.0, 0.5, 0.0, 1e-4), (1.5, 1.0, 0.0, 1e-3),
         (-0.4, 1.0, 0.05, 0.2), (0.8, 1.0, 0.05, 0.01)]  # (k, m, gamma, w0): k < 0, k > m, weight decay


def _ref(depth, k, m, gamma, w0, tau, n):
    def rhs(_, y):
        u = y[0]
        if depth == 1:
            return [(k - m * u - n * gamma * u) / tau]
        return [(depth * u * abs(u) ** (1 - 2 / depth) * (k - m * u) - depth * n * gamma * u) / tau]

    return solve_ivp(rhs, (0, TS[-1]), [w0], t_eval=TS, rtol=1e-12, atol=1e-300, method="DOP853").y[0]


@pytest.mark.parametrize("depth", [1, 2, pytest.param(3, marks=pytest.mark.slow),
                                   pytest.param(4, marks=pytest.mark.slow)])  # depth >= 3: ~20 s compile each
def test_balanced_with_moments_matches_solve_ivp(depth, x64):
    tau, n = 2.0, 3.0
    for k, m, gamma, w0 in CASES:
        u = theory.small_init_trajectory(TS, 1.0, gamma=gamma, w0=w0, tau=tau, n=n, depth=depth,
                                         noise=Moments(k, m))
        # closed forms ~1e-11 (measured; the depth >= 3 table 5e-12); solve_ivp at rtol 1e-12
        np.testing.assert_allclose(np.asarray(u), _ref(depth, k, m, gamma, w0, tau, n), rtol=1e-9,
                                   err_msg=str((k, m, gamma)))


def test_depth_one_without_noise_is_the_exponential(x64):
    """depth=1 with eps: tau du/dt = lam - (lam + eps + n gamma) u (any start, negative included)."""
    u = theory.small_init_trajectory(TS, 2.0, 0.5, 0.1, w0=-0.3, tau=2.0, n=3.0, depth=1)
    r = 2.0 + 0.5 + 0.3
    ref = 2.0 / r + (-0.3 - 2.0 / r) * np.exp(-r * TS / 2.0)
    np.testing.assert_allclose(np.asarray(u), ref, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("k", [0.6, -0.6])
def test_any_start_with_moments_matches_solve_ivp(k, x64):
    m, tau = 1.0, 1.5
    for w1, w2 in [(0.3, 0.1), (0.1, -0.2), (0.2, 0.2), (-0.05, 0.3)]:
        u = theory.dae_trajectory(TS, 1.0, None, w1, w2, tau, noise=Moments(k, m))

        def rhs(_, y):
            g = (k - m * y[0] * y[1]) / tau
            return [y[1] * g, y[0] * g]

        sol = solve_ivp(rhs, (0, TS[-1]), [w1, w2], t_eval=TS, rtol=1e-12, atol=1e-300, method="DOP853")
        # Eq. (5) in closed form; absolute 1e-14 where w crosses 0
        np.testing.assert_allclose(np.asarray(u), sol.y[0] * sol.y[1], rtol=1e-9, atol=1e-14)
        if k < 0 and w1 != w2:
            assert float(u[-1]) == pytest.approx(k / m, rel=1e-6)


@pytest.mark.slow  # reverse mode through the depth-3 solver (the table path is in the graph too): minutes
def test_negative_decay_gradient_matches_finite_differences(x64):
    """Reverse mode through the depth-3 negative-k solution (the implicit Newton step) w.r.t. k, m."""
    f = lambda k, m: theory.small_init_trajectory(jnp.array([5.0, 50.0]), 1.0, w0=0.05, tau=2.0, depth=3,
                                                  noise=Moments(k, m)).sum()
    check_grads(f, (-0.4, 1.0), order=1, modes=("rev",), eps=1e-6)


def test_moments_refusals():
    with pytest.raises(ValueError, match="w0"):
        theory.small_init_trajectory(1.0, 1.0, w0=-0.1, noise=Moments(-0.4, 1.0))
    with pytest.raises(ValueError, match="eps or noise"):
        theory.dae_trajectory(1.0, 1.0, 0.5, 0.1, 0.1, noise=Moments(-0.4, 1.0))
    with pytest.raises(ValueError, match="m"):
        theory.dae_trajectory(1.0, 1.0, None, 0.1, 0.1, noise=Moments(-0.4, 0.0))
