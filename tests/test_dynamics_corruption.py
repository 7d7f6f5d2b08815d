"""matrix_gd / matrix_flow with a per-direction or full corruption term (eps_dims=1, 2): against
NumPy gradient descent and scipy's solve_ivp in the input basis, batching, bad input."""

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from daedyn import noise
from daedyn.dynamics import matrix_flow, matrix_gd, orthogonal_init
from daedyn.spectrum import compute_spectrum


def _data(n=40, d=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, (n, d)) * np.linspace(1.0, 0.3, d)  # correlated, uneven pixels
    return x, compute_spectrum(jnp.asarray(x))


def test_matrix_gd_with_masking_matrix_equals_numpy_gd(x64):
    x, spec = _data()
    n, d, h = x.shape[0], x.shape[1], 3
    p, alpha, gamma, epochs = 0.3, 0.02, 0.05, 300
    c_eig = noise.masking(p).marginal_term(spec)
    w1, w2 = orthogonal_init(d, h, 0.1, 0.1, dtype=jnp.float64)
    traj = matrix_gd(spec.eigvals, w1, w2, eps=c_eig, eps_dims=2, gamma=gamma, alpha=alpha, n=n,
                     epochs=epochs, save_every=epochs)
    # Reference: plain gradient descent on the marginalised loss in the input basis.
    v = np.asarray(spec.eigvecs)
    a1, a2 = np.asarray(w1) @ v.T, v @ np.asarray(w2)
    sigma = x.T @ x
    a = sigma + np.diag(p / (1 - p) * np.diag(sigma))
    for _ in range(epochs):
        g = (a2 @ a1 @ a - sigma) / n
        a1, a2 = a1 - alpha * (a2.T @ g + gamma * a1), a2 - alpha * (g @ a1.T + gamma * a2)
    ref_map = np.diag(v.T @ a2 @ a1 @ v)
    # float64 rounding accumulated over 300 steps through the rotation: measured ~1e-14.
    np.testing.assert_allclose(traj.mapping[-1], ref_map, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(traj.w1[-1] if traj.w1.ndim == 3 else traj.w1, a1 @ v, atol=1e-12)
    # coupling is real here: the diagonal-only run ends elsewhere
    diag_only = matrix_gd(spec.eigvals, w1, w2, eps=jnp.diagonal(c_eig), eps_dims=1, gamma=gamma,
                          alpha=alpha, n=n, epochs=epochs, save_every=epochs)
    assert np.max(np.abs(diag_only.mapping[-1] - traj.mapping[-1])) > 1e-4


def test_matrix_flow_with_covariance_matrix_equals_solve_ivp(x64):
    x, spec = _data(n=25, d=4, seed=1)
    n, d, h = 25, 4, 2
    cov = np.array([[0.02, 0.01, 0, 0], [0.01, 0.03, 0, 0], [0, 0, 0.01, 0.005], [0, 0, 0.005, 0.01]])
    c_eig = noise.gaussian_covariance(cov).marginal_term(spec)
    tau, gamma, t_end = 5.0, 0.01, 20.0
    w1, w2 = orthogonal_init(d, h, 0.2, 0.2, dtype=jnp.float64)
    traj = matrix_flow(jnp.array([0.0, t_end]), spec.eigvals, w1, w2, eps=c_eig, eps_dims=2, gamma=gamma,
                       tau=tau, n=n, dt=0.01)
    v = np.asarray(spec.eigvecs)
    sigma = x.T @ x
    a = sigma + n * cov

    def f(_, y):
        a1, a2 = y[: h * d].reshape(h, d), y[h * d:].reshape(d, h)
        m = sigma - a2 @ a1 @ a
        d1, d2 = a2.T @ m - n * gamma * a1, m @ a1.T - n * gamma * a2
        return np.concatenate([d1.ravel(), d2.ravel()]) / tau

    y0 = np.concatenate([(np.asarray(w1) @ v.T).ravel(), (v @ np.asarray(w2)).ravel()])
    sol = solve_ivp(f, (0.0, t_end), y0, method="DOP853", rtol=1e-12, atol=1e-14)
    a1, a2 = sol.y[: h * d, -1].reshape(h, d), sol.y[h * d:, -1].reshape(d, h)
    # RK4 with dt = 0.01 against DOP853 at rtol 1e-12: global error O(dt^4 * |rates|^5), measured
    # ~1e-9 here; 1e-7 leaves margin.
    np.testing.assert_allclose(traj.mapping[-1], np.diag(v.T @ a2 @ a1 @ v), atol=1e-7)


@pytest.mark.slow  # three compiled runs
def test_vector_and_matrix_eps_batch_and_scalar_limit(x64):
    _, spec = _data(n=30, d=5, seed=2)
    w1, w2 = orthogonal_init(5, 3, 0.1, 0.1, dtype=jnp.float64)
    kw = dict(alpha=0.01, n=30, epochs=100, save_every=50)
    scalar = matrix_gd(spec.eigvals, w1, w2, eps=2.0, **kw)
    vec = matrix_gd(spec.eigvals, w1, w2, eps=jnp.full(5, 2.0), eps_dims=1, **kw)
    np.testing.assert_array_equal(vec.mapping, scalar.mapping)  # same elementwise products: bit-equal
    # a batch of two matrices: 2 I (the scalar case up to matmul rounding) and a masking term
    cs = jnp.stack([2.0 * jnp.eye(5), noise.masking(0.5).marginal_term(spec)])
    batch = matrix_gd(spec.eigvals, w1, w2, eps=cs, eps_dims=2, **kw)
    assert batch.mapping.shape == (2, 3, 5)
    np.testing.assert_allclose(batch.mapping[0], scalar.mapping, rtol=1e-13, atol=1e-15)  # rounding
    assert np.max(np.abs(batch.mapping[1] - scalar.mapping)) > 1e-5  # the second element differs (3e-4)


@pytest.mark.slow
def test_matrix_eps_float32():
    _, spec = _data(n=30, d=5, seed=3)
    spec32 = spec._replace(eigvals=jnp.asarray(spec.eigvals, jnp.float32),
                           eigvecs=jnp.asarray(spec.eigvecs, jnp.float32))
    w1, w2 = orthogonal_init(5, 2, 0.1, 0.1)
    traj = matrix_gd(spec32.eigvals, w1, w2, eps=noise.masking(0.2).marginal_term(spec32), eps_dims=2,
                     alpha=0.01, n=30, epochs=10, save_every=10)
    assert traj.mapping.dtype == jnp.float32 and np.all(np.isfinite(traj.mapping))


@pytest.mark.parametrize(("eps", "eps_dims", "match"), [
    (np.ones((4, 4)), 2, r"eps with eps_dims=2 must have shape"),
    (np.ones(4), 1, r"eps with eps_dims=1 must have shape"),
    (np.triu(np.ones((5, 5))), 2, "symmetric"),
    (-np.ones(5), 1, r"eps must lie in \[0, inf\)"),
    (1.0, 3, "eps_dims must be 0"),
])
def test_bad_noise_terms(eps, eps_dims, match):
    lam = jnp.linspace(2.0, 1.0, 5)
    w1, w2 = orthogonal_init(5, 1, 0.1, 0.1)
    with pytest.raises(ValueError, match=match):
        matrix_gd(lam, w1, w2, eps=eps, eps_dims=eps_dims, alpha=0.01, n=1, epochs=1)
