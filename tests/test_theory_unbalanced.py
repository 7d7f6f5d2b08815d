"""theory.unbalanced_trajectory / unbalanced_learning_time (daedyn/theory/_unbalanced.py) against
scipy's DOP853 integration of the L-factor flow and the balanced closed form; theory.random_start_mapping
(daedyn/theory/_alignment.py) against a NumPy gradient-descent loop of the whole network and of the
reduced model. The quadratures and the model's scan compile for 10-40 s on the shared 2-core CPU: those
tests are slow; the bad-input test is the fast one."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads
from scipy.integrate import solve_ivp

from daedyn import dynamics, theory


def _flow(lam, eps, a0, tau, t_end, t_eval=None, event=None):
    """The L-factor flow tau da_l/dt = (prod_{j != l} a_j) (lam - (lam + eps) prod a), no weight decay."""
    def rhs(_, a):
        u = np.prod(a)
        return np.array([np.prod(np.delete(a, i)) for i in range(len(a))]) * (lam - (lam + eps) * u) / tau
    return solve_ivp(rhs, (0.0, t_end), np.asarray(a0, np.float64), t_eval=t_eval, events=event,
                     method="DOP853", rtol=1e-13, atol=1e-16)


CASES = [  # (factors, eps, tau): unbalanced below w*, depth 4, depth 2, and a start above w*
    ([0.05, 0.2, 0.1], 0.5, 2.0),
    ([0.3, 0.05, 0.1, 0.2], 0.0, 1.0),
    ([0.01, 0.3], 1.0, 1.0),
    ([1.2, 0.9, 1.1], 0.2, 1.0),
]


@pytest.mark.slow
@pytest.mark.parametrize("factors,eps,tau", CASES)
def test_trajectory_matches_solve_ivp(factors, eps, tau, x64):
    ts = np.linspace(0.0, 400.0, 41)
    u = np.asarray(theory.unbalanced_trajectory(jnp.asarray(ts), 1.0, eps, factors=jnp.asarray(factors),
                                                tau=tau))
    ref = np.prod(_flow(1.0, eps, factors, tau, ts[-1], t_eval=ts).y, axis=0)
    # measured at most 1e-11 relative (the reference's own tolerance is 1e-13); bound 1e-10
    np.testing.assert_allclose(u, ref, rtol=1e-10, atol=0)


@pytest.mark.slow
def test_learning_time_matches_solve_ivp_event_and_balanced_closed_form(x64):
    a0, eps, tau = np.array([0.02, 0.3, 0.1]), 0.5, 3.0
    target = 0.4 * 1.0 / 1.5

    def hit(_, a):
        return np.prod(a) - target
    hit.terminal = True
    ref = _flow(1.0, eps, a0, tau, 1e4, event=hit).t_events[0][0]
    t = float(theory.unbalanced_learning_time(0.4, 1.0, eps, factors=jnp.asarray(a0), tau=tau))
    assert t == pytest.approx(ref, rel=1e-10)  # DOP853's event location at rtol 1e-13: measured 1e-12
    # a balanced start: the depth-3 closed form (the separate quadrature of theory/_deep_solve.py)
    bal = theory.unbalanced_learning_time(0.5, 2.0, 0.3, factors=jnp.full(3, 0.05), tau=2.0)
    want = theory.learning_time(0.5, 2.0, 0.3, w0=0.05**3, tau=2.0, depth=3)
    np.testing.assert_allclose(bal, want, rtol=1e-10)
    # a start already past the level: 0
    assert float(theory.unbalanced_learning_time(0.5, 1.0, factors=jnp.array([1.0, 0.9, 0.8]))) == 0.0


@pytest.mark.slow
def test_float32_and_gradients(x64):
    a0 = jnp.array([0.05, 0.2, 0.1])
    u64 = theory.unbalanced_trajectory(jnp.array([5.0, 20.0]), 1.0, 0.5, factors=a0)
    u32 = theory.unbalanced_trajectory(jnp.array([5.0, 20.0], jnp.float32), np.float32(1.0), np.float32(0.5),
                                       factors=a0.astype(jnp.float32))
    assert u32.dtype == jnp.float32
    np.testing.assert_allclose(u32, u64, rtol=1e-4)  # float32 rounding through the quadrature
    # derivatives in lam, eps and the factors (the last differentiable Newton step) vs central differences
    f = lambda lam, eps, a: theory.unbalanced_trajectory(jnp.array([8.0]), lam, eps, factors=a)
    check_grads(f, (1.0, 0.5, a0), order=1, modes=("rev",), atol=1e-6, rtol=1e-6)


def test_bad_input_names_the_parameter():
    a = jnp.array([0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="gamma must be 0"):
        theory.unbalanced_trajectory(1.0, 1.0, 0.0, 0.1, factors=a)
    with pytest.raises(ValueError, match="factors"):
        theory.unbalanced_trajectory(1.0, 1.0, factors=jnp.array([0.1, -0.2]))
    with pytest.raises(ValueError, match="L >= 2"):
        theory.unbalanced_trajectory(1.0, 1.0, factors=jnp.array([0.1]))
    with pytest.raises(ValueError, match="lam"):
        theory.unbalanced_learning_time(0.5, 0.0, factors=a)
    with pytest.raises(ValueError, match="fraction must lie in"):
        theory.unbalanced_learning_time(1.0, 1.0, factors=a)


def _numpy_gd(lam, ws, eps, gamma, tau, n, epochs, active=None):
    """Gradient descent of the whole network in the eigenbasis (active=None) or of the reduced model
    written out independently: the top `active` columns / rows move with the exact gradient, the
    background rows follow b <- b - (Pi P Pi^T + n gamma) b / tau, the background columns
    a <- a - (eps Pi^T Q Pi + n gamma) a / tau."""
    ws = [np.array(w, np.float64) for w in ws]
    m = lam + eps
    d = len(lam)
    k = d if active is None else active
    out = []
    for _ in range(epochs + 1):
        pi = np.eye(ws[0].shape[0])
        for w in ws[1:-1]:
            pi = w @ pi
        full = ws[-1] @ pi @ ws[0]
        out.append(np.diag(full)[:k].copy())
        g = (np.diag(lam) - full * m[None, :]) / tau  # -dloss/dW in the eigenbasis, / tau
        grads = []
        for l in range(len(ws)):
            left = np.eye(d)
            for w in ws[l + 1:][::-1]:
                left = left @ w
            right = np.eye(d)
            for w in ws[:l]:
                right = w @ right
            grads.append(left.T @ g @ right.T - n * gamma * ws[l] / tau)
        if active is not None:  # the background: columns decay only, rows are projected
            p = (ws[0] * m) @ ws[0].T
            s = pi @ p @ pi.T
            q = ws[-1].T @ ws[-1]
            grads[0][:, k:] = -(eps * pi.T @ q @ pi @ ws[0][:, k:] + n * gamma * ws[0][:, k:]) / tau
            grads[-1][k:] = -(ws[-1][k:] @ s.T + n * gamma * ws[-1][k:]) / tau
        ws = [w + gr for w, gr in zip(ws, grads)]
    return np.array(out)


@pytest.mark.slow  # compiles the model's scan: 20-35 s on the shared CPU
def test_random_start_mapping_is_full_gd_with_every_direction_active(x64):
    lam = np.array([5.0, 3.0, 2.0, 1.0, 0.4, 0.1])
    ws = dynamics.random_init(6, (4, 3), init_scale=0.3, key=jax.random.key(3))
    got = theory.random_start_mapping(jnp.asarray(lam), ws, 0.5, 0.01, tau=20.0, n=2.0, epochs=60, active=6)
    want = _numpy_gd(lam, ws, 0.5, 0.01, 20.0, 2.0, 60)
    # the same float64 recursion, products in another order: measured 1e-15; bound 1e-12
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


@pytest.mark.slow
def test_random_start_mapping_reduced_model_against_numpy(x64):
    lam = np.array([5.0, 3.0, 2.0, 1.0, 0.4, 0.1])
    ws = dynamics.random_init(6, (4, 4, 3), init_scale=0.3, key=jax.random.key(4))  # depth 4
    got = theory.random_start_mapping(jnp.asarray(lam), ws, 0.2, 0.0, tau=10.0, n=1.0, epochs=40, active=2)
    want = _numpy_gd(lam, ws, 0.2, 0.0, 10.0, 1.0, 40, active=2)
    # the NumPy loop moves the background rows themselves, the model their Gram matrix Q (exact for
    # the rows' own update): float64 rounding, measured 1e-16; bound 1e-12
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="chain"):
        theory.random_start_mapping(jnp.asarray(lam), (ws[0], ws[3]), tau=1.0, n=1, epochs=2)
    with pytest.raises(ValueError, match="active"):
        theory.random_start_mapping(jnp.asarray(lam), ws, tau=1.0, n=1, epochs=2, active=0)


def test_second_derivatives_match_solve_ivp(x64):
    # jax.hessian in (lam, eps, factor 0, t) against second differences of the DOP853 flow (rtol 1e-13,
    # steps 1e-3 of each value: truncation ~1e-6, rounding 1e-13 / 1e-6). Before, rho(u) and the table's
    # inversion each took one differentiable Newton step (exact first derivatives only): up to 72% off.
    factors, tau = [0.05, 0.2, 0.1], 2.0
    p = np.array([1.0, 0.5, factors[0], 20.0])

    def ours(q):
        fac = jnp.stack([q[2], *factors[1:]])
        return theory.unbalanced_trajectory(q[3], q[0], q[1], factors=fac, tau=tau)

    def ref(q):
        return np.prod(_flow(q[0], q[1], [q[2], *factors[1:]], tau, q[3]).y[:, -1])

    h_ad = np.asarray(jax.hessian(ours)(jnp.asarray(p)))
    h = 1e-3 * p
    e = np.eye(4) * h
    mixed = lambda i, j: (ref(p + e[i] + e[j]) - ref(p + e[i] - e[j]) - ref(p - e[i] + e[j])  # noqa: E731
                          + ref(p - e[i] - e[j])) / (4 * h[i] * h[j])
    h_fd = np.array([[mixed(i, j) for j in range(4)] for i in range(4)])
    # measured ~1e-7 of the largest entry; bound 1e-4
    np.testing.assert_allclose(h_ad, h_fd, atol=1e-4 * np.abs(h_fd).max())
