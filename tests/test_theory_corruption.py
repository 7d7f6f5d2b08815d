"""Per-direction theory for a general corruption term (daedyn.theory._corruption)."""

import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from daedyn import noise, theory
from daedyn.spectrum import compute_spectrum


def _spec(n=40, d=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, (n, d)) * np.linspace(1.0, 0.4, d)
    return compute_spectrum(jnp.asarray(x))


def test_masking_eps_is_the_diagonal_of_the_rotated_term_and_differentiable(x64):
    spec = _spec()
    for p in (0.1, 0.6):
        full = noise.masking(p).marginal_term(spec)
        np.testing.assert_allclose(theory.masking_eps(p, spec.eigvals, spec.eigvecs),
                                   theory.diagonal_eps(full), rtol=1e-13)  # float64 rounding
    # central differences in float64 (default step) agree to check_grads' 1e-5-ish tolerance
    check_grads(lambda p: theory.masking_eps(p, spec.eigvals, spec.eigvecs), (0.3,), order=1)
    with pytest.raises(ValueError, match=r"p must lie in \[0, 1\)"):
        theory.masking_eps(1.0, spec.eigvals, spec.eigvecs)


@pytest.mark.slow
def test_diagonal_term_makes_the_theory_exact(x64):
    spec = _spec(seed=1)
    c = jnp.diag(jnp.array([3.0, 2.0, 1.0, 0.5, 0.1]))  # diagonal in the eigenbasis: no coupling
    ts = jnp.linspace(0.0, 40.0, 9)
    r = theory.diagonal_approximation_error(ts, spec.eigvals, c, hidden=3, w0=1e-3, tau=20.0, n=40,
                                            dt=0.05)
    # only the RK4 error of the flow remains (dt = 0.05, rates lam / tau <= ~2): measured ~1e-9.
    assert float(r.rmse.max()) < 1e-7
    np.testing.assert_array_equal(r.theory[:, 3:], 0.0)  # directions beyond H stay unlearned


def test_coupling_error_is_second_order_in_the_off_diagonal(x64):
    # The off-diagonal part of V^T C V changes each direction's mapping at second order (the first-
    # order change of a diagonal entry of a symmetric perturbation vanishes), so halving it divides
    # the approximation error by about 4. This checks that the measured error is the coupling, not
    # numerics.
    spec = _spec(seed=2)
    full = noise.masking(0.5).marginal_term(spec)
    diag = jnp.diag(jnp.diagonal(full))
    ts = jnp.linspace(0.0, 60.0, 13)
    kw = dict(hidden=2, w0=1e-3, tau=20.0, n=40, dt=0.05)
    e1 = theory.diagonal_approximation_error(ts, spec.eigvals, full, **kw).rmse
    e2 = theory.diagonal_approximation_error(ts, spec.eigvals, diag + (full - diag) / 2, **kw).rmse
    assert float(e1.max()) > 1e-4  # masking does couple these directions
    ratio = float(e1.max() / e2.max())
    assert 3.0 < ratio < 5.0, ratio  # 4 at second order; measured 4.49 (and 4.16 for the next halving)
