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


def _masking_eps(p, spec):
    """eps_j of masking, one spelling: the diagonal of its term in the eigenbasis."""
    return theory.diagonal_eps(noise.masking(p).marginal_term(spec))


def test_masking_eps_is_the_closed_form_in_p_and_differentiable(x64):
    spec = _spec()
    v2 = np.asarray(spec.eigvecs) ** 2
    diag_sigma = v2 @ np.asarray(spec.eigvals)  # diag(Sigma)_k = sum_i V_ki^2 lam_i
    for p in (0.1, 0.6):
        want = p / (1 - p) * (v2.T @ diag_sigma)  # eps_j(p) = p/(1-p) sum_k V_kj^2 diag(Sigma)_k
        np.testing.assert_allclose(_masking_eps(p, spec), want, rtol=1e-13)  # float64 rounding
    # pixel-aligned eigenvectors at p = 1/2: eps_j = lam_j
    aligned = compute_spectrum(jnp.diag(jnp.sqrt(jnp.array([3.0, 1.0]))))
    np.testing.assert_allclose(_masking_eps(0.5, aligned), np.sort([3.0, 1.0])[::-1], rtol=1e-13)
    # central differences in float64 (default step) agree to check_grads' 1e-5-ish tolerance
    check_grads(lambda p: _masking_eps(p, spec), (0.3,), order=1)
    with pytest.raises(ValueError, match=r"p must lie in \[0, 1\)"):
        _masking_eps(1.0, spec)


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
