"""daedyn.diffusion.sample (EDM's Heun sampler) and the exact linear flow, against scipy's solve_ivp of
the probability-flow ODE dx/ds = (x - D(x; s)) / s."""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from scipy.integrate import solve_ivp

from daedyn import diffusion
from daedyn.diffusion._sample import heun_levels, linear_flow_variance

SD = 0.5


def _scalings(s, precond):
    """EDM's (c_skip, c_out, c_in) written out from the issue's conventions (independent of the code)."""
    if precond == "none":
        return 0.0, 1.0, 1.0
    r = s * s + SD * SD
    return SD * SD / r, s * SD / np.sqrt(r), 1.0 / np.sqrt(r)


def _flow_ivp(f_np, x0, precond, lo=0.002, hi=80.0):
    """solve_ivp of the probability-flow ODE from hi down to lo, each row of x0 (float64)."""

    def rhs(s, y):
        x = y.reshape(x0.shape)
        c_skip, c_out, c_in = _scalings(s, precond)
        den = c_skip * x + c_out * f_np(c_in * x)
        return ((x - den) / s).ravel()

    # integrate in ln s: the right-hand side is stiff-free there (dx/dln s = x - D)
    sol = solve_ivp(lambda y, z: np.exp(y) * rhs(np.exp(y), z), (np.log(hi), np.log(lo)), x0.ravel(),
                    rtol=1e-11, atol=1e-12, method="DOP853")
    return sol.y[:, -1].reshape(x0.shape)


def _matrix(seed, d=4, scale=0.4):
    rng = np.random.default_rng(seed)
    return scale * rng.standard_normal((d, d)), np.linalg.qr(rng.standard_normal((d, d)))[0]


@pytest.mark.parametrize("precond", ["edm", "none"])
def test_linear_flow_variance_matches_solve_ivp(precond, x64):
    # W with a large off-diagonal part: the flow map exp(-I0) expm(I1 W) holds for any W (the flow's
    # matrices commute across s). Oracle: solve_ivp of the ODE from the identity, C = hi^2 X X^T.
    w, v = _matrix(0)
    obj = diffusion.Objective(precond=precond)
    lo, hi = 0.002, (80.0 if precond == "edm" else 5.0)  # "none": keep hi^2 (lo/hi)^(2 (1 - u)) moderate
    x_end = _flow_ivp(lambda z: z @ w.T, np.eye(4), precond, lo, hi)  # rows: X e_k -> columns of the map
    cov = hi * hi * x_end.T @ x_end
    want = np.diagonal(v.T @ cov @ v)
    got = linear_flow_variance(jnp.asarray(w), jnp.asarray(v), obj, sigma_min=lo, sigma_max=hi)
    # solve_ivp at rtol 1e-11; expm to ~1e-14: 1e-8 leaves room for the ODE's accumulated error
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-8)


def test_linear_flow_variance_diagonal_is_the_closed_form(x64):
    # W = V diag(u) V^T: the per-direction closed form hi^2 (lo^2 + sd^2)/(hi^2 + sd^2) exp(2 u (atan(hi/sd)
    # - atan(lo/sd))), written out here; the off-diagonal part of a W changes it at second order only
    _, v = _matrix(1)
    u = np.array([0.9, 0.3, -0.2, -0.7])
    lo, hi = 0.002, 80.0
    i1 = np.arctan(hi / SD) - np.arctan(lo / SD)
    closed = hi**2 * (lo**2 + SD**2) / (hi**2 + SD**2) * np.exp(2 * u * i1)
    w = v @ np.diag(u) @ v.T
    got = linear_flow_variance(jnp.asarray(w), jnp.asarray(v), diffusion.Objective())
    np.testing.assert_allclose(np.asarray(got), closed, rtol=1e-12)
    # W's off-diagonal part moves the per-direction variance at second order: halving it quarters the
    # change (measured ratios 3.9-4.1; the change itself is largest for the small-variance directions,
    # which receive variance from the large ones)
    off = 1e-2 * np.random.default_rng(2).standard_normal((4, 4))
    hi_sd = np.arctan(hi / SD) - np.arctan(lo / SD)

    def change(scale):
        m = w + scale * off
        u_m = np.diagonal(v.T @ m @ v)
        proj = hi**2 * (lo**2 + SD**2) / (hi**2 + SD**2) * np.exp(2 * u_m * hi_sd)
        return np.abs(np.asarray(linear_flow_variance(jnp.asarray(m), jnp.asarray(v), diffusion.Objective()))
                      / proj - 1)

    ratio = change(1.0) / change(0.5)
    assert np.all((ratio > 3.5) & (ratio < 4.5)), ratio


def test_heun_levels_are_edms():
    # Karras et al. (2022), Eq. (5): (s_max^(1/rho) + i/(K-1) (s_min^(1/rho) - s_max^(1/rho)))^rho
    k = 18
    i = np.arange(k)
    want = (80.0 ** (1 / 7) + i / (k - 1) * (0.002 ** (1 / 7) - 80.0 ** (1 / 7))) ** 7
    np.testing.assert_allclose(np.asarray(heun_levels(k)), want, rtol=1e-5)  # float32 powers


@pytest.mark.parametrize("precond", ["edm", "none"])
def test_heun_converges_to_solve_ivp_at_second_order(precond, x64):
    # a linear F pushed through the sampler from sigma_max times the identity: the Heun map against the
    # ODE's; the error falls like K^-2 (ratio 4 per doubling; measured 3.9-4.0 at these K)
    w, _ = _matrix(3)
    hi = 80.0 if precond == "edm" else 5.0
    start = hi * np.eye(4)
    exact = _flow_ivp(lambda z: z @ w.T, start, precond, 0.002, hi)
    obj = diffusion.Objective(precond=precond)
    f = lambda z: z @ jnp.asarray(w).T  # noqa: E731
    heun = lambda k: np.asarray(diffusion.sample(f, obj, key=None, start=start, steps=k, sigma_max=hi))  # noqa: E731
    errs = [float(np.max(np.abs(heun(k) - exact)) / np.max(np.abs(exact))) for k in (64, 128, 256)]
    ratios = np.array(errs[:-1]) / np.array(errs[1:])
    assert np.all((ratios > 3.5) & (ratios < 4.5)), (errs, ratios)
    assert errs[-1] < 1e-3


def test_heun_on_a_nonlinear_network_matches_solve_ivp(x64):
    # F = W2 tanh(W1 x): 4 points through 512 levels against solve_ivp; Heun's error there is 3e-5 of
    # the samples' scale (measured); 2e-4 fails for a first-order or wrong step
    rng = np.random.default_rng(4)
    w1, w2 = rng.standard_normal((6, 3)), 0.3 * rng.standard_normal((3, 6))
    start = 80.0 * rng.standard_normal((4, 3))
    exact = _flow_ivp(lambda z: np.tanh(z @ w1.T) @ w2.T, start, "edm")
    f = lambda z: jnp.tanh(z @ jnp.asarray(w1).T) @ jnp.asarray(w2).T  # noqa: E731
    got = np.asarray(diffusion.sample(f, diffusion.Objective(), key=None, start=start, steps=512))
    assert np.max(np.abs(got - exact)) / np.max(np.abs(exact)) < 2e-4  # measured 3e-5


def test_to_zero_adds_the_denoisers_output():
    # Algorithm 1's last step from s_min to 0 is x + (0 - s)(x - D)/s = D(x; s_min)
    w = 0.5 * jnp.eye(3)
    f = lambda z: z @ w.T  # noqa: E731
    obj = diffusion.Objective()
    x = diffusion.sample(f, obj, key=jr.key(0), shape=(5, 3), steps=8)
    y = diffusion.sample(f, obj, key=jr.key(0), shape=(5, 3), steps=8, to_zero=True)
    s = 0.002
    c_skip, c_out, c_in = _scalings(s, "edm")
    np.testing.assert_allclose(np.asarray(y), c_skip * np.asarray(x) + c_out * 0.5 * c_in * np.asarray(x),
                               rtol=1e-5)  # float32


def test_sample_dtypes(x64):
    # float32 inputs stay float32, float64 ones float64; the same start gives the same samples up to
    # float32 rounding over 8 steps
    f = lambda z: 0.2 * z  # noqa: E731
    start = 80.0 * np.random.default_rng(5).standard_normal((6, 2))
    x32 = diffusion.sample(f, diffusion.Objective(sigma_data=jnp.float32(0.5)), key=None,
                           start=jnp.asarray(start, jnp.float32), steps=8, sigma_min=jnp.float32(0.002),
                           sigma_max=jnp.float32(80.0), rho=jnp.float32(7.0))
    x64_ = diffusion.sample(f, diffusion.Objective(), key=None, start=start, steps=8)
    assert x32.dtype == jnp.float32 and x64_.dtype == jnp.float64
    assert diffusion.sample(f, diffusion.Objective(), key=jr.key(0), shape=(3, 2)).dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(x32), np.asarray(x64_), rtol=1e-4, atol=1e-5)


def test_sample_compiles_once_per_shape():
    # a Partial network keeps its parameters traced: two parameter values, one compilation
    from daedyn.diffusion._train import _apply_fn

    apply = _apply_fn(None)
    obj = diffusion.Objective()
    before = diffusion._sample._heun._cache_size()
    for scale in (0.1, 0.2):
        f = jax.tree_util.Partial(apply, {"w1": scale * jnp.eye(3)})
        diffusion.sample(f, obj, key=jr.key(0), shape=(7, 3), steps=5)
    assert diffusion._sample._heun._cache_size() - before == 1


@pytest.mark.parametrize("kwargs, match", [
    (dict(steps=1), "steps"), (dict(sigma_min=0.0), "sigma_min"), (dict(sigma_min=90.0), "sigma_min"),
    (dict(rho=0.0), "rho"), (dict(shape=(3,)), "shape"), (dict(shape=None, start=np.ones(3)), "start"),
])
def test_sample_refuses_bad_input(kwargs, match):
    args = dict(key=jr.key(0), shape=(3, 2))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        diffusion.sample(lambda z: z, diffusion.Objective(), **args)
