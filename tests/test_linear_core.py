"""The private linear-DAE core (daedyn._linear): every fast form against an independent reference.

References: ``jax.grad`` of the loss for the closed-form gradients, the data-matrix loss for the
Sigma loss, NumPy's SVD/eigh for the observables, and the residual form for the gram form.
"""

import warnings

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from daedyn import _linear as core

MM = core.matmul_fn("highest")


def _net(key, dims, scale=0.3):
    """Factors for layer widths dims = (D, H_1, ..., H_{L-1}, D)."""
    keys = jr.split(key, len(dims) - 1)
    return tuple(scale * jr.normal(k, (dims[i + 1], dims[i])) for i, k in enumerate(keys))


def _problem(key, d, n=7):
    kx, kc = jr.split(key)
    x = jr.normal(kx, (n, d))
    b = jr.normal(kc, (d, d))
    return x, x.T @ x, b @ b.T  # data, Sigma, a PSD corruption matrix


def _noises(c_mat, d):
    """The three representations of C: scalar, per-component diagonal, full matrix."""
    return {"scalar": jnp.asarray(0.7), "diagonal": jnp.linspace(0.2, 1.5, d), "matrix": c_mat}


DIMS = {"L2 H<D": (5, 3, 5), "L2 H>D": (4, 6, 4), "L3": (5, 4, 3, 5), "L4": (4, 3, 5, 2, 4)}


@pytest.mark.parametrize("dims", DIMS.values(), ids=DIMS.keys())
@pytest.mark.parametrize("noise", ["scalar", "diagonal", "matrix"])
@pytest.mark.parametrize("form", ["gram", "square"])
def test_closed_form_gradient_is_the_gradient_of_the_loss(dims, noise, form, x64):
    ws = _net(jr.key(0), dims)
    _, sigma, c_mat = _problem(jr.key(1), dims[0])
    c = _noises(c_mat, dims[0])[noise]
    n, gamma = 7.0, 0.3
    auto = jax.grad(lambda w: core.loss(w, sigma, c, n=n, gamma=gamma, mm=MM))(ws)
    closed = core.grad(ws, sigma, c, n=n, gamma=gamma, mm=MM, form=form)
    # Same algebra, different summation order: float64 round-off (measured <= 1e-14 relative).
    for a, b in zip(closed, auto, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("noise", ["scalar", "diagonal", "matrix"])
def test_gram_t_is_the_gram_form_transposed(noise, x64):
    w1, w2 = _net(jr.key(2), (6, 4, 6))
    _, sigma, c_mat = _problem(jr.key(3), 6)
    c = _noises(c_mat, 6)[noise]
    d1, d2 = core.rhs((w1, w2), sigma, c, ng=0.5, mm=MM, form="gram")
    t1, t2 = core.rhs((w1, w2.T), sigma, c, ng=0.5, mm=MM, form="gram_t")
    np.testing.assert_allclose(t1, d1, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(t2, d2.T, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("dims", DIMS.values(), ids=DIMS.keys())
def test_loss_forms_and_data_loss_agree(dims, x64):
    ws = _net(jr.key(4), dims)
    x, sigma, c_mat = _problem(jr.key(5), dims[0])
    n = x.shape[0]
    for c in _noises(c_mat, dims[0]).values():
        ref = core.data_loss(ws, x, c, gamma=0.2, mm=MM)  # from the data rows, O(N D H)
        for form in core.LOSS_FORMS:
            got = core.loss(ws, sigma, c, n=n, gamma=0.2, mm=MM, form=form)
            np.testing.assert_allclose(got, ref, rtol=1e-11)  # float64 round-off


@pytest.mark.parametrize("dims", [(5, 3, 5), (5, 4, 3, 5)])
def test_eigenbasis_rotation_preserves_loss_and_gives_the_mapping(dims, x64):
    ws = _net(jr.key(6), dims)
    _, sigma, c_mat = _problem(jr.key(7), dims[0])
    lam, v = core.eigh_desc(sigma)
    we = core.to_eigenbasis(ws, v, MM)
    c_eig = v.T @ c_mat @ v
    np.testing.assert_allclose(core.loss(we, lam, c_eig, n=3.0, mm=MM),
                               core.loss(ws, sigma, c_mat, n=3.0, mm=MM), rtol=1e-11)
    # the mapping is diag(V^T W V)
    np.testing.assert_allclose(core.mapping(we, MM), np.diag(v.T @ core.product(ws, MM) @ v),
                               rtol=1e-10, atol=1e-13)
    back = core.from_eigenbasis(we, v, MM)
    for a, b in zip(back, ws, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-13)
    # gradients rotate the same way: the eigenbasis step equals the rotated data-basis step
    g_eig = core.grad(we, lam, c_eig, n=3.0, gamma=0.1, mm=MM)
    g_dat = core.to_eigenbasis(core.grad(ws, sigma, c_mat, n=3.0, gamma=0.1, mm=MM), v, MM)
    for a, b in zip(g_eig, g_dat, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dims", [(6, 3, 6), (4, 5, 4), (4, 4, 4), (6, 5, 2, 6)])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_svdvals_of_the_product(dims, dtype):
    with jax.enable_x64(dtype == "float64"):
        ws = tuple(w.astype(dtype) for w in _net(jr.key(8), dims, scale=1.0))
        got = core.svdvals(ws, MM)
        ref = np.linalg.svd(np.asarray(core.product(ws, MM), np.float64), compute_uv=False)
        k = min(dims[0], dims[-2])
        assert got.dtype == jnp.dtype(dtype) and got.shape == (k,)
        # float32: QR + SVD of the small factor, about 1e-6 relative to the largest value
        tol = 1e-12 if dtype == "float64" else 2e-5
        np.testing.assert_allclose(got, ref[:k], rtol=tol, atol=tol * ref[0])


def test_gd_step_is_gradient_descent(x64):
    ws = _net(jr.key(9), (5, 3, 5))
    _, sigma, _ = _problem(jr.key(10), 5)
    g = core.grad(ws, sigma, 0.4, n=7.0, gamma=0.1, mm=MM)
    new = core.gd_step(ws, sigma, 0.4, n=7.0, gamma=0.1, alpha=0.05, mm=MM)
    for w, gw, nw in zip(ws, g, new, strict=True):
        np.testing.assert_allclose(nw, w - 0.05 * gw, rtol=1e-13, atol=1e-15)


def test_residual_form_is_accurate_near_identity(x64):
    """At W = I the loss is the noise and decay terms only; the gram form cancels tr(Sigma)."""
    d = 6
    ws = (jnp.eye(d), jnp.eye(d))
    sigma = jnp.diag(jnp.logspace(0, 6, d))
    exact = 0.5 * d / (2 * 1.0) + 0.0  # tr(W C W^T) = eps * d with eps = 0.5
    got = core.loss(ws, sigma, 0.5, n=1.0, mm=MM, form="residual")
    np.testing.assert_allclose(got, exact, rtol=1e-14)


def test_eigh_desc_sorted_signed_reconstructs(x64):
    _, sigma, _ = _problem(jr.key(11), 5)
    lam, v = core.eigh_desc(sigma)
    assert np.all(np.diff(lam) <= 0) and np.all(lam >= 0)
    pivot = np.argmax(np.abs(v), axis=0)
    assert np.all(v[pivot, np.arange(5)] > 0)
    np.testing.assert_allclose(v @ np.diag(lam) @ v.T, sigma, rtol=1e-12, atol=1e-10)
    lam64, v64 = core.eigh_desc_float64(np.asarray(sigma, np.float32))
    assert lam64.dtype == np.float64 and v64.dtype == np.float64


def test_check_form():
    assert core.check_form("auto", 784, 256) == "gram"
    assert core.check_form("auto", 10, 10) == "square"
    with pytest.raises(ValueError, match="form must be"):
        core.check_form("fast", 4, 2)
    with pytest.raises(ValueError, match="gram_t.*depth 2"):
        core.check_form("gram_t", 4, 2, depth=3)


def test_one_stability_check_for_every_layer():
    """dynamics and train warn through the same function (the core's)."""
    from daedyn import dynamics

    assert dynamics.check_gd_stability is core.check_gd_stability
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        core.check_gd_stability(lam=300.0, alpha=0.01)
    assert caught and issubclass(caught[0].category, core.UnstableStepWarning)


@pytest.mark.parametrize("depth", [2, 3])
def test_quadratic_form_of_a_biased_corruption(depth, x64):
    """Raw masking as (M, K): the core's loss with K = (1 - p) Sigma, C = M - K and tr S, and its data
    form with mean scale 1 - p and covariance p (1 - p) diag(Sigma), equal the expected loss summed
    over every one of the 2^D masks of each sample (exact enumeration, D = 4)."""
    import itertools

    rng = np.random.default_rng(3)
    x, p, gamma = rng.uniform(0, 1, (3, 4)), 0.35, 0.02
    shapes = [(3, 4)] + [(3, 3)] * (depth - 2) + [(4, 3)]
    ws = tuple(jnp.asarray(rng.normal(0, 0.5, s)) for s in shapes)
    w = np.asarray(ws[0])
    for f in ws[1:]:
        w = np.asarray(f) @ w
    total = 0.0
    for mask in itertools.product([0, 1], repeat=4):
        m = np.array(mask, float)
        prob = np.prod(np.where(m == 1, 1 - p, p))
        total += prob * np.sum((x - (x * m) @ w.T) ** 2)
    want = total / (2 * x.shape[0]) + gamma / 2 * sum(float(jnp.sum(f * f)) for f in ws)
    sigma = x.T @ x
    mm = core.matmul_fn("highest")
    k, m_ = (1 - p) * sigma, (1 - p) ** 2 * sigma + p * (1 - p) * np.diag(np.diag(sigma))
    got = core.loss(ws, jnp.asarray(k), jnp.asarray(m_ - k), n=x.shape[0], gamma=gamma, mm=mm,
                    s_trace=np.trace(sigma))
    got_data = core.data_loss(ws, jnp.asarray(x), jnp.asarray(p * (1 - p) * np.diag(sigma)), gamma=gamma,
                              mm=mm,
                              mean_scale=1 - p)
    # float64 sums of a few dozen terms: 1e-12
    np.testing.assert_allclose(float(got), want, rtol=1e-12)
    np.testing.assert_allclose(float(got_data), want, rtol=1e-12)
    # without tr S the constant is tr K: off by p tr(Sigma) / (2N), so the test can fail
    without = float(core.loss(ws, jnp.asarray(k), jnp.asarray(m_ - k), n=x.shape[0], gamma=gamma, mm=mm))
    assert abs(without - want) > 1e-3
