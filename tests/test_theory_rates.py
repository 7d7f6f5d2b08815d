"""daedyn.theory, fixed points, equivalent weight decay and learning rates (daedyn/theory/_rates.py,
fixed_point from _balanced.py): the paper's numbers (section 5, Eq. (8), supplement D-E)."""

import jax.numpy as jnp
import numpy as np
import pytest

from daedyn import theory


def test_paper_fixed_points_gamma_and_ratio(x64):
    # section 4 / Figure 1: w* = 1, 0.5, 1/6 for lam = 1, eps = 0, 1, 5 (exact fractions, 1e-15)
    np.testing.assert_allclose(theory.fixed_point(1.0, jnp.array([0.0, 1.0, 5.0])), [1.0, 0.5, 1 / 6],
                               rtol=1e-15)
    # Figure 4: gamma = lam * 0.1 / (lam + 0.1) = 0.0909 (printed to 4 digits)
    assert round(float(theory.equivalent_gamma(1.0, 0.1)), 4) == 0.0909
    # the equivalent gamma gives the same fixed point as the noise
    lam, eps = jnp.array([0.1, 0.5, 1.0, 2.5]), jnp.array([0.2, 1.0, 1.8, 0.4])
    np.testing.assert_allclose(theory.fixed_point(lam, 0.0, theory.equivalent_gamma(lam, eps, n=3.0), n=3.0),
                               theory.fixed_point(lam, eps), rtol=1e-14)
    # Eq. (8): R = (2 lam + gamma) / (2 lam + 3 eps); lam = 1, eps = 1, gamma_eq = 1/2: 2.5 / 5
    g = theory.equivalent_gamma(1.0, 1.0)
    assert float(theory.learning_rate_ratio(1.0, 1.0, g)) == pytest.approx(0.5, rel=1e-15)
    a_eps, a_gam = theory.optimal_learning_rates(1.0, 1.0, g)
    assert float(a_eps / a_gam) == pytest.approx(0.5, rel=1e-15)
    # section 5: with the equivalent gamma, R decreases monotonically in eps, faster for smaller lam
    eps_grid = jnp.linspace(0.0, 10.0, 101)
    for lam in (0.5, 1.0, 2.5):
        r = theory.learning_rate_ratio(lam, eps_grid, theory.equivalent_gamma(lam, eps_grid))
        assert bool(jnp.all(jnp.diff(r) < 0)) and float(r[0]) == 1.0
    # figure-settings.md: the authors' Figure 3 WDAE rate 0.005 (lam + eps) / (2 lam (lam + 2 eps))
    for eps in (0.2, 1.0, 1.8):
        g = theory.equivalent_gamma(1.0, eps)
        _, a_exp = theory.optimal_learning_rates(1.0, eps, g, 0.005, convention="experiment")
        assert float(a_exp) == pytest.approx(0.005 * (1 + eps) / (2 * (1 + 2 * eps)), rel=1e-14)
        a_dae, _ = theory.optimal_learning_rates(1.0, eps, g, 0.005)
        assert float(a_dae) == pytest.approx(0.005 / (2 + 3 * eps), rel=1e-14)


def test_weight_decay_delays_learning_noise_does_not(x64):
    # section 5 / Figure 2: from small weights, noise does not delay learning (it reaches half of its
    # own fixed point slightly *earlier* than the plain AE, by log(w*) / (2 lam)), while the
    # equivalent weight decay stretches the escape by lam / (lam - gamma).
    lam, w0 = 1.0, 1e-6
    t_ae = float(theory.learning_time(0.5, lam, 0.0, w0=w0))
    for eps in (0.4, 1.0, 1.8):
        w_star = lam / (lam + eps)
        t_dae = float(theory.learning_time(0.5, lam, eps, w0=w0))
        g = float(theory.equivalent_gamma(lam, eps))
        t_wdae = float(theory.learning_time(0.5, lam, 0.0, g, w0=w0))
        # closed-form differences (exact, float64 rounding: 1e-12)
        assert t_dae == pytest.approx(t_ae + (np.log(w_star - w0) - np.log(1 - w0)) / (2 * lam), rel=1e-12)
        assert t_wdae == pytest.approx(t_dae * lam / (lam - g), rel=1e-12)
        assert t_dae < t_ae < t_wdae



def test_optimal_learning_rates_bad_convention():
    with pytest.raises(ValueError, match="convention"):
        theory.optimal_learning_rates(1.0, 1.0, 0.1, convention="paper")
