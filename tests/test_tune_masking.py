"""Tuning the masking rate p through the closed form (daedyn.tune.tune_corruption with
``noise.masking``) against a grid."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from daedyn import data, noise, tune


def _check_against_grid(r):
    i = int(jnp.argmin(r.grid.values))
    # Adam in logit p converges to the continuous optimum: no grid point is better (to float32
    # rounding of the objective, 1e-6 relative), and it lies within one grid spacing (0.01) of the
    # best grid point.
    assert float(r.loss) <= float(r.grid.values[i]) * (1 + 1e-6)
    assert abs(float(r.noise.p) - float(r.grid.grid["p"][i])) <= 0.01 + 1e-6


def test_tune_masking_synthetic_matches_grid():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(300, 8)) * np.linspace(1.0, 0.2, 8)
    prob = tune.heldout_problem(x[:200], x[200:])
    r = tune.tune_corruption(prob, noise.masking(0.2), epochs=500.0, alpha=0.05, eval_sigma2=0.05,
                             max_steps=150)
    assert 0.01 < float(r.noise.p) < 0.99  # an interior optimum
    _check_against_grid(r)
    # the objective is differentiable in p: finite, nonzero slope away from the optimum
    f = tune.corruption_objective_fn(prob, noise.masking(0.2), epochs=500.0, alpha=0.05, eval_sigma2=0.05)
    f_p = lambda p: f(noise.masking(p))  # noqa: E731 (the objective of the rate itself)
    assert np.isfinite(float(jax.grad(f_p)(0.5))) and float(jax.grad(f_p)(0.9)) > 0


@pytest.mark.slow  # loads mnist5k and its 784 x 784 spectrum: ~10-30 s on a 2-core CPU
def test_tune_masking_mnist5k_matches_grid():
    x = np.asarray(data.load("mnist5k").x)
    prob = tune.heldout_problem(x[:4000], x[4000:])
    r = tune.tune_corruption(prob, noise.masking(0.2), epochs=2000.0, alpha=0.02, eval_sigma2=0.05)
    # measured: p = 0.1109 (loss 5.505300) vs the grid's 0.11 (5.505308)
    _check_against_grid(r)


def test_tune_masking_errors():
    prob = tune.problem_from_spectrum([2.0, 1.0], [1.0, 0.5], n=10, n_heldout=5)
    with pytest.raises(ValueError, match="eigenvectors"):
        tune.corruption_objective_fn(prob, noise.masking(0.2), epochs=10.0, alpha=0.1, eval_sigma2=0.1)
