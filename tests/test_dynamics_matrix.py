"""Full-matrix engine at depth 2: decoupling, agreement with the data/Sigma paths, fixed points, options,
bad input (depth x schedule kind x engine against NumPy: tests/test_combinations.py)."""

import warnings

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from daedyn import _linear as core
from daedyn import theory
from daedyn.dynamics import (
    UnstableStepWarning,
    from_eigenbasis,
    matrix_flow,
    matrix_gd,
    orthogonal_init,
    random_init,
    to_eigenbasis,
)
from daedyn.dynamics._matrix import matrix_rhs
from daedyn.dynamics._matrix_reference import matrix_gd_data, matrix_gd_sigma  # reference paths


def _spectrum(d):
    return jnp.asarray(np.linspace(3.0, 0.5, d))


@pytest.mark.parametrize("d,h", [(5, 3), pytest.param(4, 4, marks=pytest.mark.slow), (3, 5)])  # H <, =, > D
def test_orthogonal_init_flow_is_the_scalar_closed_form(d, h, x64):
    k = min(d, h)
    lam = _spectrum(d)
    rng = np.random.default_rng(d * 10 + h)
    d1 = rng.uniform(-1.5, 1.5, k)  # unbalanced, mixed signs: the general solution (5)
    d2 = rng.uniform(-1.5, 1.5, k)
    w1, w2 = orthogonal_init(d, h, d1, d2, key=jr.key(h))  # random rotation R
    ts = jnp.linspace(0.0, 6.0, 4)
    traj = matrix_flow(ts, lam, w1, w2, eps=0.7, tau=1.0, n=1, dt=0.005)
    closed = theory.dae_trajectory(ts[:, None], lam[None, :k], 0.7, d1, d2)
    # RK4 at dt = 0.005, float64: measured 3e-12 against the closed form; atol 1e-9 (the matrix path
    # adds rounding through R only).
    np.testing.assert_allclose(traj.mapping[:, :k], closed, rtol=0, atol=1e-9)
    np.testing.assert_allclose(traj.mapping[:, k:], 0.0, atol=1e-12)  # unlearned directions stay 0
    # Decoupled: W2 W1 stays diagonal, so its singular values are |w_j| sorted.
    np.testing.assert_allclose(traj.singular_values, -np.sort(-np.abs(np.asarray(closed)), axis=1), atol=1e-9)


def _dataset(n, d, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (n, d)) * np.linspace(1.0, 0.2, d)  # uncentred, distinct variances


@pytest.mark.parametrize("h", [3, pytest.param(8, marks=pytest.mark.slow)])  # H < D and H > D
def test_eigenbasis_equals_data_matrix_and_sigma_paths(h, x64):
    n, d = 40, 6
    x = _dataset(n, d)
    sigma = x.T @ x
    lam, v = np.linalg.eigh(sigma)
    lam, v = lam[::-1], v[:, ::-1]
    w1, w2 = random_init(d, h, init_scale=0.3, key=jr.split(jr.key(h), 2))  # two seeds, in the data basis
    kw = dict(eps=jnp.array([[0.0], [8.0]]), gamma=jnp.array([0.0, 0.05]), alpha=0.02, epochs=60,
              save_every=20)  # batch (2, 2): eps x (gamma, seed)
    data = matrix_gd_data(x, w1, w2, **kw)
    sig = matrix_gd_sigma(sigma, w1, w2, n=n, eigvals=lam, eigvecs=v, **kw)
    wb1, wb2 = to_eigenbasis(w1, w2, v)
    eig = matrix_gd(lam, wb1, wb2, n=n, **kw)
    assert eig.mapping.shape == (2, 2, 4, d) and eig.singular_values.shape == (2, 2, 4, min(h, d))
    # Three different float64 computations of the same recursion: measured <= 2e-14; rtol 1e-10.
    for ref in (data, sig):
        np.testing.assert_allclose(eig.mapping, ref.mapping, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(eig.singular_values, ref.singular_values, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(eig.weight_norm, ref.weight_norm, rtol=1e-10)
        np.testing.assert_allclose(eig.loss, ref.loss, rtol=1e-10)  # spectrum-only vs data loss
    back1, back2 = from_eigenbasis(eig.w1, eig.w2, v)
    np.testing.assert_allclose(back1, data.w1, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(back2, data.w2, rtol=1e-10, atol=1e-12)
    # Loss and singular values against independent formulas on the final weights.
    want = theory.expected_loss(data.w1, data.w2, sigma, n, kw["eps"], kw["gamma"][:, None].T)
    np.testing.assert_allclose(eig.loss[..., -1], want, rtol=1e-10)
    sv = np.linalg.svd(np.asarray(data.w2 @ data.w1), compute_uv=False)[..., : min(h, d)]
    np.testing.assert_allclose(eig.singular_values[..., -1, :], sv, rtol=1e-9, atol=1e-12)


def _contract_rhs(lam, w1, w2, eps, ng):
    """docs/CONTRACTS.md's eigenbasis RHS written out literally (NumPy, float64)."""
    lam_m = np.diag(lam)
    w = w2 @ w1
    d1 = w2.T @ (lam_m - w @ lam_m) - eps * w2.T @ w2 @ w1 - ng * w1
    d2 = (lam_m - w @ lam_m) @ w1.T - eps * w @ w1.T - ng * w2
    return d1, d2


@pytest.mark.parametrize("d,h", [(5, 3), (4, 4), (3, 5)])  # H <, =, > D
def test_all_forms_equal_the_contract_rhs(d, h, x64):
    lam = _spectrum(d)
    w1, w2 = random_init(d, h, init_scale=0.5, key=jr.key(3 + h))
    mm = core.matmul_fn(None)

    def rhs(lam, w1, w2, eps, ng, form):  # eager: tiny arrays, cheaper than compiling 3 forms x 3 shapes
        state = (w1, w2.T) if form == "gram_t" else (w1, w2)
        d1, d2 = core.rhs(state, lam, jnp.asarray(eps), ng=ng, mm=mm, form=form)
        return (d1, d2.T) if form == "gram_t" else (d1, d2)
    ref = _contract_rhs(*(np.asarray(a) for a in (lam, w1, w2)), 0.3, 0.2)
    for form in ("gram", "gram_t", "square"):
        got = rhs(lam, w1, w2, 0.3, 0.2, form=form)
        # Same algebra, different association of products: rounding only (measured <= 4e-16 on
        # O(1) entries); rtol 1e-12 / atol 1e-14.
        for x, y in zip(got, ref):
            np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-14, err_msg=form)
    # Per-direction eps_j (a (D,) diagonal corruption term): eps W becomes W diag(eps_j).
    eps_j = jnp.linspace(0.1, 0.9, d)
    for form in ("gram", "gram_t"):
        a, b = rhs(lam, w1, w2, eps_j, 0.2, form=form), rhs(lam, w1, w2, eps_j, 0.2, form="square")
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-14, err_msg=form)


# H < D: every form at depth 2 (gram, square, gram_t) is checked against NumPy for GD and the flow in
# tests/test_combinations.py; H > D here (slow)
@pytest.mark.parametrize("d,h", [pytest.param(3, 5, marks=pytest.mark.slow)])
def test_forms_give_the_same_gd_and_flow(d, h, x64):
    lam = _spectrum(d) * 10
    w1, w2 = random_init(d, h, init_scale=0.3, key=jr.split(jr.key(d), 2))  # a batch of two seeds
    kw = dict(eps=jnp.array([0.5, 2.0]), gamma=0.05, n=10)
    runs = {f: matrix_gd(lam, w1, w2, alpha=0.05, epochs=60, save_every=20, form=f, **kw)
            for f in ("gram", "gram_t", "square")}
    flows = {f: matrix_flow(jnp.array([0.0, 0.5]), lam, w1, w2, tau=1.0, dt=0.01, form=f, **kw)
             for f in ("gram_t", "square")}
    for group, ref in ((runs, runs["square"]), (flows, flows["square"])):
        for f, r in group.items():
            # 60 GD steps / 50 RK4 steps in float64, rounding only: measured <= 1e-15; rtol 1e-11.
            for field in ("mapping", "weight_norm", "loss", "w1", "w2"):
                np.testing.assert_allclose(getattr(r, field), getattr(ref, field), rtol=1e-11, atol=1e-13,
                                           err_msg=f"{f} {field}")


def test_gram_and_square_forms_are_the_gradient(x64):
    lam = _spectrum(5)
    w1, w2 = random_init(5, 4, init_scale=0.5, key=jr.key(3))
    # The right-hand side is minus n times the gradient of the expected loss (autodiff of theory's
    # loss from Sigma = diag(lam), V = I); n = 2, gamma = 0.1 so n gamma = 0.2.
    a = matrix_rhs(lam, w1, w2, eps=0.3, gamma=0.1, n=2)
    loss = lambda p, q: theory.expected_loss(p, q, jnp.diag(lam), 2, 0.3, 0.1)
    grad = jax.grad(loss, argnums=(0, 1))(w1, w2)
    np.testing.assert_allclose(a[0], -2 * grad[0], rtol=1e-12, atol=1e-14)  # rounding only
    np.testing.assert_allclose(a[1], -2 * grad[1], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("d,h", [(6, 4), pytest.param(3, 5, marks=pytest.mark.slow)])
def test_small_random_init_reaches_the_fixed_points(d, h, x64):
    lam = jnp.array([5.0, 4.0, 3.0, 2.0, 1.0, 0.5])[:d]
    w1, w2 = random_init(d, h, init_scale=1e-3, key=jr.key(d))
    ts = jnp.array([0.0, 60.0])
    eps = np.array([0.0, 1.5, 0.0, 0.0])
    gamma = np.array([0.0, 0.0, 1.0, 3.5])  # 1 - n gamma / lam, clipped at 0 for lam < 3.5
    traj = matrix_flow(ts, lam, w1, w2, eps=eps, gamma=gamma, tau=1.0, n=1, dt=0.02)
    k = min(d, h)
    want = np.zeros((4, d))
    lk = np.asarray(lam)[None, :k]
    want[:, :k] = np.maximum(0.0, 1 - gamma[:, None] / lk) * lk / (lk + eps[:, None])
    # Saddle escape from |w| ~ 1e-3 takes t ~ log(1e3) / (lam_k - lam_{k+1}) ~ 7; by t = 60 the slowest
    # remaining mode (rate 2 (lam - n gamma) or lam_k - lam_{k+1} = 1) is below e^-50; atol 1e-8.
    np.testing.assert_allclose(traj.mapping[:, -1], want, rtol=0, atol=1e-8)
    start = np.sum(np.asarray(w2) * np.asarray(w1).T, axis=1)
    np.testing.assert_allclose(traj.mapping[:, 0], np.broadcast_to(start, (4, d)), rtol=1e-12)  # t = 0


def test_random_init_statistics_and_keys():
    w1, w2 = random_init(40, 30, init_scale=0.1, key=jr.key(0))
    assert w1.shape == (30, 40) and w2.shape == (40, 30) and w1.dtype == jnp.float32
    # 1200 samples each: the sample std is within 3 standard errors (0.1 / sqrt(2400) * 3 ~ 0.006).
    assert abs(float(jnp.std(jnp.concatenate([w1.ravel(), w2.ravel()]))) - 0.1) < 0.006
    b1, _ = random_init(40, 30, init_scale=0.1, key=jr.split(jr.key(0), 3))
    assert b1.shape == (3, 30, 40)
    assert not np.allclose(b1[0], b1[1])  # independent seeds
    raw1, _ = random_init(4, 2, init_scale=1.0, key=jr.PRNGKey(5))  # legacy uint32 keys work too
    typed1, _ = random_init(4, 2, init_scale=1.0, key=jr.wrap_key_data(jr.PRNGKey(5)))
    np.testing.assert_array_equal(raw1, typed1)


def test_batched_seeds_and_settings_match_single_runs():
    lam = _spectrum(4)
    w1, w2 = random_init(4, 2, init_scale=0.1, key=jr.split(jr.key(2), 2))  # (2, H, D)
    eps = jnp.array([[0.0], [0.5], [2.0]])  # (3, 1) against seeds (2,)
    kw = dict(alpha=0.1, n=1, epochs=100, save_every=100)
    batch = matrix_gd(lam, w1, w2, eps=eps, **kw)
    assert batch.mapping.shape == (3, 2, 2, 4) and batch.loss.shape == (3, 2, 2)
    assert batch.w1.shape == (3, 2, 2, 4) and batch.t.shape == (2,)
    one = matrix_gd(lam, w1[1], w2[1], eps=2.0, **kw)
    # vmap vs a single run: same float32 arithmetic up to batched-matmul blocking; rtol 1e-5 ~ 100 ulp.
    np.testing.assert_allclose(batch.mapping[2, 1], one.mapping, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(batch.loss[2, 1], one.loss, rtol=1e-5)


def test_precision_option_and_float32():
    lam = _spectrum(4)
    w1, w2 = orthogonal_init(4, 2, 0.1, 0.1)
    hi = matrix_gd(lam, w1, w2, alpha=0.1, n=1, epochs=100, save_every=100, precision="highest")
    lo = matrix_gd(lam, w1, w2, alpha=0.1, n=1, epochs=100, save_every=100, precision=None)
    assert hi.mapping.dtype == jnp.float32
    # On CPU every precision computes in float32: the results agree to rounding (rtol 1e-5 ~ 100 ulp);
    # the values are the learned fixed points 1, 1 for the top H = 2 directions.
    np.testing.assert_allclose(hi.mapping, lo.mapping, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(hi.mapping[-1], [1.0, 1.0, 0.0, 0.0], atol=1e-5)
    with pytest.raises(ValueError, match="precision"):
        matrix_gd(lam, w1, w2, alpha=0.1, n=1, epochs=1, precision="ultra")


def test_matrix_gd_stability_warning():
    lam = jnp.array([500.0, 1.0, 0.5, 0.2])
    w1, w2 = orthogonal_init(4, 2, 0.1, 0.1)
    with pytest.warns(UnstableStepWarning, match="1 of 2 setting.*lam=500, alpha=0.1"):
        matrix_gd(lam, w1, w2, alpha=0.1, n=1, epochs=100, save_every=100)  # alpha * 2 lam = 100


@pytest.mark.parametrize("change,match", [
    (dict(eigvals=jnp.array([1.0, -0.5, 0.1])), "eigvals"),
    (dict(eigvals=jnp.array([1.0, np.nan, 0.1])), "eigvals"),
    (dict(eps=-1.0), "eps"),
    (dict(alpha=0.0), "alpha"),
    (dict(gamma=-0.2), "gamma"),
    (dict(w1=jnp.full((2, 3), np.nan)), "w1"),
    (dict(w1=jnp.zeros((0, 3)), w2=jnp.zeros((3, 0))), "H"),
    (dict(w2=jnp.zeros((2, 3))), "shapes"),
    (dict(eigvals=jnp.ones(4)), "D = 4"),
    (dict(eps=jnp.ones(3), w1=jnp.zeros((2, 2, 3)), w2=jnp.zeros((2, 3, 2))), "broadcast"),
    (dict(epochs=5, save_every=2), "multiple"),
    (dict(form="dense"), "form"),
])
def test_matrix_bad_input(change, match):
    w1, w2 = orthogonal_init(3, 2, 0.1, 0.1)
    args = dict(eigvals=jnp.array([1.0, 0.5, 0.1]), w1=w1, w2=w2, eps=0.1, alpha=0.01, n=1, epochs=2,
                save_every=1) | change
    with pytest.raises(ValueError, match=match):
        matrix_gd(args.pop("eigvals"), args.pop("w1"), args.pop("w2"), **args)


def test_init_and_flow_bad_input():
    with pytest.raises(ValueError, match="h must be an integer >= 1"):
        orthogonal_init(3, 0, 0.1, 0.1)
    with pytest.raises(ValueError, match="d must be"):
        random_init(0, 2, init_scale=0.1, key=jr.key(0))
    with pytest.raises(ValueError, match="scale"):
        random_init(3, 2, init_scale=-1.0, key=jr.key(0))
    with pytest.raises(ValueError, match="d1"):
        orthogonal_init(3, 2, np.nan, 0.1)
    w1, w2 = orthogonal_init(3, 2, 0.1, 0.1)
    with pytest.raises(ValueError, match="tau"):
        matrix_flow(jnp.array([0.0, 1.0]), jnp.ones(3), w1, w2, tau=0.0, n=1, dt=0.1)
    with pytest.raises(ValueError, match="dt"):
        matrix_flow(jnp.array([0.0, 1.0]), jnp.ones(3), w1, w2, tau=1.0, n=1, dt=0.0)
    with pytest.raises(ValueError, match="x"):
        matrix_gd_data(np.full((4, 3), np.inf), w1, w2, alpha=0.1, epochs=1)


def test_matrix_gd_warns_when_the_start_overshoots():
    """At the fixed point alpha * 2 lam / n = 0.006 is stable, but from w = 1 with eps = 1e6 the first
    step overshoots (alpha * h_start ~ 2000): the check looks at the start too."""
    w1, w2 = orthogonal_init(3, 2, 1.0, 1.0)
    with pytest.warns(UnstableStepWarning, match="start"):
        matrix_gd(jnp.array([3.0, 2.0, 1.0]), w1, w2, eps=1e6, alpha=1e-3, n=1, epochs=2)
    small1, small2 = orthogonal_init(3, 2, 1e-3, 1e-3)  # the same rate from a small start: no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        matrix_gd(jnp.array([3.0, 2.0, 1.0]), small1, small2, eps=1.0, alpha=1e-3, n=1, epochs=2)
