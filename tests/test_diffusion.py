"""daedyn.diffusion: the coefficients (A, B) against quadrature of their definition and a Monte Carlo
of the loss itself, predict's w against solve_ivp of the per-direction flow (depths 1-3, both
preconditionings, both signs of B, any start at depth 2), the generated variance against quadrature
and the probability-flow ODE, KL and Frechet against NumPy/SciPy formulas, gradients against finite
differences. Every reference is computed here from the conventions of issue 26, not by daedyn."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from jax.test_util import check_grads
from scipy.integrate import IntegrationWarning, quad, solve_ivp

from daedyn import diffusion as df
from daedyn import theory
from daedyn.diffusion._divergence import frechet_distance, kl_divergence

SD = 0.5


# ------------------------------------------------------------------------------------------------
# independent references (NumPy / SciPy) of the conventions


def _scalings(precond, s, sd=SD):
    """(c_skip, 1 - c_skip, c_out, c_in); 1 - c_skip = s^2 / (s^2 + sd^2) formed without the rounding of
    the subtraction (it made quad's tiny-s pieces noisy)."""
    if precond == "none":
        return 0.0, 1.0, 1.0, 1.0
    r = s * s + sd * sd
    return sd * sd / r, s * s / r, s * sd / np.sqrt(r), 1.0 / np.sqrt(r)


def _weight(precond, weighting, s, sd=SD):
    kind = weighting or ("edm" if precond == "edm" else "uniform")
    return {"edm": (s * s + sd * sd) / (s * sd) ** 2, "uniform": 1.0, "s2": s * s}[kind]


def _integrands(precond, weighting, lam, n, s, sd=SD):
    c_skip, one_minus, c_out, c_in = _scalings(precond, s, sd)
    w = _weight(precond, weighting, s, sd)
    a = w * c_out**2 * c_in**2 * (lam + n * s * s)
    b = w * c_out * c_in * (one_minus * lam - c_skip * n * s * s)
    return a, b


def _log_density(dist):
    """(density of ln s, integration range in ln s) of a LogNormal / LogUniform."""
    if isinstance(dist, df.LogNormal):
        pm, ps = float(dist.p_mean), float(dist.p_std)
        dens = lambda x: np.exp(-((x - pm) ** 2) / (2 * ps * ps)) / np.sqrt(2 * np.pi * ps * ps)
        # 12 standard deviations past the peaks of the integrands tilted by s^-2 (at pm - 2 ps^2) and
        # by s^4 (at pm + 4 ps^2): what is left out is below e^-70 of the integral
        return dens, (pm - 2 * ps * ps - 12 * ps - 2, pm + 4 * ps * ps + 12 * ps + 2)
    lo, hi = np.log(float(dist.s_min)), np.log(float(dist.s_max))
    return (lambda x: 1.0 / (hi - lo)), (lo, hi)


def ref_coefficients(dist, precond, weighting, lam, n, sd=SD):
    """(A, B) by adaptive quadrature (or the exact sum of a Ladder) of the issue's definitions."""
    if isinstance(dist, df.Ladder):
        s = np.asarray(dist.sigmas, float)
        p = np.full(s.shape, 1 / s.size) if dist.probs is None else np.asarray(dist.probs, float)
        a, b = _integrands(precond, weighting, lam, n, s, sd)
        return float(np.sum(p * a)), float(np.sum(p * b))
    dens, (lo, hi) = _log_density(dist)
    edges = np.linspace(lo, hi, 41)  # pieces a few standard deviations wide: quad sees each bump
    out = []
    for i in (0, 1):
        f = lambda x: _integrands(precond, weighting, lam, n, np.exp(x))[i] * dens(x)
        with warnings.catch_warnings():  # a rough first pass, only for the absolute tolerance's scale
            warnings.simplefilter("ignore", IntegrationWarning)
            scale = sum(abs(quad(f, a, b, limit=200)[0]) for a, b in zip(edges[:-1], edges[1:]))
        out.append(sum(quad(f, a, b, epsabs=1e-14 * scale, epsrel=1e-12, limit=200)[0]
                       for a, b in zip(edges[:-1], edges[1:])))
    return tuple(out)


def ref_u(ts, a, b, w0, tau, depth):
    """u(t) of tau du/dt = L u |u|^(1-2/L) (B - A u) (depth 1: B - A u) by solve_ivp, rtol 1e-12."""
    def rhs(_, y):
        u = y[0]
        if depth == 1:
            return [(b - a * u) / tau]
        return [depth * u * abs(u) ** (1 - 2 / depth) * (b - a * u) / tau]

    sol = solve_ivp(rhs, (0.0, ts[-1]), [w0], t_eval=ts, rtol=1e-12, atol=1e-300, method="DOP853")
    return sol.y[0]


def ref_variance_quad(u, precond, smin, smax, sd=SD):
    """v = smax^2 exp(-2 int (1 - g(s)) / s ds) by quadrature in ln s."""
    def f(x):
        s = np.exp(x)
        _, one_minus, c_out, c_in = _scalings(precond, s, sd)
        return one_minus - c_out * c_in * u

    i = quad(f, np.log(smin), np.log(smax), epsabs=0, epsrel=1e-13, limit=500)[0]
    return smax**2 * np.exp(-2 * i)


def ref_variance_flow(u, precond, smin, smax, sd=SD):
    """Integrate the probability-flow ODE dx/ds = (x - g(s) x) / s from x(smax) = smax (one standard
    deviation of N(0, smax^2)) down to smin: the linear flow maps the std, v = x(smin)^2."""
    def rhs(s, x):
        _, one_minus, c_out, c_in = _scalings(precond, s, sd)
        return [(one_minus - c_out * c_in * u) * x[0] / s]

    sol = solve_ivp(rhs, (smax, smin), [smax], rtol=1e-12, atol=1e-300, method="DOP853")
    return sol.y[0, -1] ** 2


# ------------------------------------------------------------------------------------------------
# coefficients


DISTS = [df.LogNormal(-1.2, 1.2), df.LogNormal(0.0, 2.0), df.LogNormal(1.0, 5.0), df.LogNormal(-3.0, 0.2),
         df.LogUniform(0.002, 80.0), df.LogUniform(1e-5, 1e5),
         df.Ladder(np.array([0.01, 0.3, 2.0, 40.0]), np.array([0.1, 0.2, 0.3, 0.4]))]


@pytest.mark.parametrize("dist", DISTS, ids=lambda d: type(d).__name__)
@pytest.mark.parametrize("precond", ["edm", "none"])
def test_coefficients_match_quadrature(dist, precond, x64):
    # quad at epsrel 1e-12 (each integrand is smooth in ln s): the nodes' error is below 1e-10 relative
    # (measured: at most 1e-12, the worst LogNormal(1, 5) with "edm"); tolerance 1e-10 as the issue asks.
    lam = np.array([3.0, 50.0, 4e3])
    for weighting in (None, "uniform", "s2", "edm"):
        obj = df.Objective(dist, precond, SD, weighting)
        a, b = obj.coefficients(lam, 100.0)
        for j, lj in enumerate(lam):
            ra, rb = ref_coefficients(dist, precond, weighting, lj, 100.0)
            np.testing.assert_allclose(float(a[j]), ra, rtol=1e-10, err_msg=f"A {weighting}")
            np.testing.assert_allclose(float(b[j]), rb, rtol=1e-10, err_msg=f"B {weighting}")
        k, m = obj.direction_moments(lam, 100.0)
        assert np.array_equal(np.asarray(k), np.asarray(b)) and np.array_equal(np.asarray(m), np.asarray(a))


def test_edm_b_changes_sign_at_sigma_data(x64):
    # Derived: under "edm" B = (lam - N sd^2) E[s / (sd (s^2 + sd^2))]; its sign is that of lam/N - sd^2.
    n = 64.0
    lam = n * SD**2 * np.array([0.5, 0.99, 1.01, 3.0])
    _, b = df.Objective().coefficients(lam, n)
    assert list(np.sign(np.asarray(b))) == [-1, -1, 1, 1]
    scale = quad(lambda x: np.exp(x) / (SD * (np.exp(2 * x) + SD**2))
                 * np.exp(-((x + 1.2) ** 2) / 2.88) / np.sqrt(2 * np.pi * 1.44), -60, 60, epsrel=1e-13)[0]
    np.testing.assert_allclose(np.asarray(b), (lam - n * SD**2) * scale, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("precond,weighting",
                         [("edm", None), ("none", None), ("edm", "uniform"), ("none", "s2")])
def test_coefficients_against_monte_carlo_of_the_loss(precond, weighting, x64):
    """The loss (1/(2N)) sum_i E_s E_n w ||D(x_i + s n; s) - x_i||^2 of a D-dimensional denoiser with
    F = V diag(u) V^T, sampled (s, n) per example, random data with a given spectrum: its quadratic
    and linear terms in u_j are A_j and -2 B_j (common random numbers at u = -1, 0, 1)."""
    rng = np.random.default_rng(0)
    n, d, draws = 40, 3, 3000
    v = np.linalg.qr(rng.normal(size=(d, d)))[0]
    z = np.linalg.qr(rng.normal(size=(n, d)))[0]  # orthonormal columns: X^T X = V diag(lam) V^T
    lam = np.array([90.0, 12.0, 3.0])
    x = (z * np.sqrt(lam)) @ v.T
    dist = df.LogNormal(-0.5, 1.0)
    s = np.exp(-0.5 + rng.normal(size=(draws, n, 1)))
    noise = rng.normal(size=(draws, n, d))
    c_skip, _, c_out, c_in = _scalings(precond, s)
    w = np.broadcast_to(_weight(precond, weighting, s), s.shape)

    def per_draw(u):  # (draws,) sample losses
        xt = x[None] + s * noise
        f = (c_in * xt) @ v @ np.diag(u) @ v.T
        den = c_skip * xt + c_out * f
        return np.sum(w[..., 0] * np.sum((den - x[None]) ** 2, axis=-1), axis=-1) / (2 * n)

    a, b = df.Objective(dist, precond, SD, weighting).coefficients(lam, n)
    for j in range(d):
        e = np.eye(d)[j]
        lp, l0, lm = per_draw(e), per_draw(0 * e), per_draw(-e)
        a_draws = n * (lp + lm - 2 * l0)
        b_draws = -n * (lp - lm) / 2
        for est, ref in ((a_draws, a[j]), (b_draws, b[j])):
            se = est.std() / np.sqrt(draws)
            # 5 standard errors of the Monte Carlo mean (about 1-2% here): a wrong A or B (e.g. a
            # missing c_skip term, or N s^2 for s^2) is off by far more
            assert abs(est.mean() - float(ref)) < 5 * se, (j, est.mean(), float(ref), se)


# ------------------------------------------------------------------------------------------------
# predict: the trajectories


LAM = np.array([400.0, 40.0, 10.0, 1.0])  # lam / N = 4, 0.4, 0.1, 0.01: B > 0, > 0, < 0, < 0 under "edm"
N_SAMPLES, ALPHA = 100.0, 0.5
TAU = N_SAMPLES / ALPHA
TS = np.array([0.0, 20.0, 200.0, 1000.0, 5000.0])


@pytest.mark.parametrize("depth,precond", [(1, "edm"), (1, "none"), (2, "edm"), (2, "none"), (3, "edm"),
                                           pytest.param(3, "none", marks=pytest.mark.slow)])
def test_predict_w_matches_solve_ivp(depth, precond, x64):  # depth 3: ~20 s to compile the table solver
    dist = df.LogNormal(-1.2, 1.2)
    r = df.predict(TS, LAM, n=N_SAMPLES, alpha=ALPHA, w0=1e-3, sigma=dist, precond=precond, depth=depth)
    assert r.w.shape == (TS.size, LAM.size) and r.variance.shape == r.w.shape
    for j, lj in enumerate(LAM):
        a, b = ref_coefficients(dist, precond, None, lj, N_SAMPLES)
        ref = ref_u(TS, a, b, 1e-3, TAU, depth)
        # closed forms: ~1e-12 (depth 3: the fixed table, measured 1e-12); solve_ivp at rtol 1e-12 (its
        # atol 1e-300 stops a decay near 1e-302 where the true value underflows: atol 1e-280 here)
        np.testing.assert_allclose(np.asarray(r.w[:, j]), ref, rtol=1e-8, atol=1e-280, err_msg=str(j))
        np.testing.assert_allclose(float(r.a[j]), a, rtol=1e-10)
    if precond == "edm":  # B < 0 for the last two: a positive balanced start decays
        assert np.all(np.asarray(r.w[-1, 2:]) < 1e-3)


@pytest.mark.slow  # the depth-3 compilation again when xdist puts it on the other worker
def test_predict_depth3_negative_b_decays_algebraically(x64):
    """At depth 3 the B < 0 decay is a power law ``u ~ ((L - 2) |B| t / tau)^(-L/(L-2))`` at late times
    (u^(-1/3) grows linearly), not the exponential of depth 2. (Shapes as the other depth-3 tests:
    one compilation of the depth-3 solver, ~20 s on the 2-core CPU, serves all.)"""
    t = np.array([0.0, 1e3, 1e5, 1e6, 1e7])
    r = df.predict(t, LAM, n=N_SAMPLES, alpha=ALPHA, w0=1e-3, depth=3)
    for j in (2, 3):
        a, b = ref_coefficients(df.LogNormal(), "edm", None, LAM[j], N_SAMPLES)
        assert b < 0
        np.testing.assert_allclose(np.asarray(r.w[:, j]), ref_u(t, a, b, 1e-3, TAU, 3), rtol=1e-8)
        late = (abs(b) * t[-1] / TAU) ** -3.0
        assert float(r.w[-1, j]) == pytest.approx(late, rel=2e-2)  # next order ~ (A / |B|) / z: < 2%


@pytest.mark.parametrize("precond", ["edm", "none"])
def test_predict_any_start_depth2_learns_negative_b(precond, x64):
    """start=(w1, w2): the two-factor flow tau dw1/dt = w2 (B - A w), tau dw2/dt = w1 (B - A w) by
    solve_ivp; with B < 0 an unbalanced start learns B / A < 0 while w1 = w2 decays."""
    w1 = np.array([0.03, -0.02, 0.05, 0.01])
    w2 = np.array([0.01, 0.04, -0.02, 0.01])  # the last is balanced
    r = df.predict(TS, LAM, n=N_SAMPLES, alpha=ALPHA, precond=precond, start=(w1, w2))
    for j, lj in enumerate(LAM):
        a, b = ref_coefficients(df.LogNormal(), precond, None, lj, N_SAMPLES)

        def rhs(_, y, a=a, b=b):
            g = (b - a * y[0] * y[1]) / TAU
            return [y[1] * g, y[0] * g]

        sol = solve_ivp(rhs, (0, TS[-1]), [w1[j], w2[j]], t_eval=TS, rtol=1e-12, atol=1e-300, method="DOP853")
        # Eq. (5) in closed form (~1e-12); 1e-8 relative, 1e-14 absolute where w crosses 0
        np.testing.assert_allclose(np.asarray(r.w[:, j]), sol.y[0] * sol.y[1], rtol=1e-8, atol=1e-14)
    if precond == "edm":
        a2, b2 = ref_coefficients(df.LogNormal(), "edm", None, LAM[2], N_SAMPLES)
        assert float(r.w[-1, 2]) == pytest.approx(b2 / a2, rel=1e-6)  # learned the negative value
        assert abs(float(r.w[-1, 3])) < 1e-6  # balanced: decayed


def test_independent_ladder_levels_are_separate_daes(x64):
    """conditioning='independent': level i is the paper's DAE at eps = N s_i^2 with its rate scaled by
    p_i w_i; under "none" / uniform, k_i = p_i lam and m_i = p_i (lam + N s_i^2)."""
    sig, p = np.array([2.0, 0.5, 0.1]), np.array([0.5, 0.3, 0.2])
    lad = df.Ladder(sig, p)
    r = df.predict(TS, LAM[:2], n=N_SAMPLES, alpha=ALPHA, w0=1e-3, sigma=lad, precond="none",
                   conditioning="independent")
    assert r.w.shape == (TS.size, 2, 3)
    for j in range(2):
        for i in range(3):
            ref = ref_u(TS, p[i] * (LAM[j] + N_SAMPLES * sig[i] ** 2), p[i] * LAM[j], 1e-3, TAU, 2)
            np.testing.assert_allclose(np.asarray(r.w[:, j, i]), ref, rtol=1e-8)
    # generation on the ladder: x <- g_i x + (s_{i+1} / s_i)(1 - g_i) x from the largest level
    u = np.asarray(r.w[-1, 0])
    f = [u[i] + sig[i + 1] / sig[i] * (1 - u[i]) for i in range(2)]
    assert float(r.variance[-1, 0]) == pytest.approx(sig[0] ** 2 * (f[0] * f[1]) ** 2, rel=1e-12)


# ------------------------------------------------------------------------------------------------
# the generated variance


@pytest.mark.parametrize("precond", ["edm", "none"])
def test_variance_matches_quadrature_and_probability_flow(precond, x64):
    r = df.predict(TS, LAM, n=N_SAMPLES, alpha=ALPHA, w0=1e-3, precond=precond, sigma_min=0.002,
                   sigma_max=80.0)
    for i in (0, 2, 4):
        for j in range(LAM.size):
            u = float(r.w[i, j])
            v = float(r.variance[i, j])
            # closed-form integrals against quad (1e-13) and the ODE (rtol 1e-12 over ln(80/0.002) = 10.6)
            assert v == pytest.approx(ref_variance_quad(u, precond, 0.002, 80.0), rel=1e-10)
            assert v == pytest.approx(ref_variance_flow(u, precond, 0.002, 80.0), rel=1e-8)


# ------------------------------------------------------------------------------------------------
# KL and Frechet


def _gaussian_case(rng, d=4):
    v_basis = np.linalg.qr(rng.normal(size=(d, d)))[0]
    gen_var = rng.uniform(0.2, 3.0, size=(2, d))  # two time points
    held = rng.normal(size=(30, d)) * np.array([2.0, 1.0, 0.7, 0.3])
    return v_basis, gen_var, held.T @ held / held.shape[0]


def test_kl_and_frechet_match_numpy_formulas(x64):
    rng = np.random.default_rng(1)
    basis, gen_var, cov = _gaussian_case(rng)
    kl = np.asarray(kl_divergence(gen_var, cov, basis=basis))
    kl_r = np.asarray(kl_divergence(gen_var, cov, basis=basis, reverse=True))
    fd = np.asarray(frechet_distance(gen_var, cov, basis=basis))
    d = cov.shape[0]
    for i in range(2):
        s = basis @ np.diag(gen_var[i]) @ basis.T  # the generated covariance
        ld_s, ld_c = np.linalg.slogdet(s)[1], np.linalg.slogdet(cov)[1]
        ref = 0.5 * (np.trace(np.linalg.solve(s, cov)) - d + ld_s - ld_c)
        ref_r = 0.5 * (np.trace(np.linalg.solve(cov, s)) - d + ld_c - ld_s)
        rs = scipy.linalg.sqrtm(s)
        ref_fd = np.trace(s) + np.trace(cov) - 2 * np.trace(scipy.linalg.sqrtm(rs @ cov @ rs)).real
        # dense linear algebra of 4 x 4 well-conditioned matrices: 1e-10 is ~1e5 ulps of margin
        assert kl[i] == pytest.approx(ref, rel=1e-10)
        assert kl_r[i] == pytest.approx(ref_r, rel=1e-10)
        assert fd[i] == pytest.approx(ref_fd, rel=1e-9)
    # a diagonal (training) covariance per direction equals the full form in the eigenbasis
    c = np.array([1.5, 0.4, 2.0, 0.9])
    np.testing.assert_allclose(np.asarray(kl_divergence(gen_var, c)),
                               np.asarray(kl_divergence(gen_var, np.diag(c))), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(frechet_distance(gen_var, c)),
                               np.sum((np.sqrt(gen_var) - np.sqrt(c)) ** 2, axis=-1), rtol=1e-12)


def test_prediction_methods_are_the_distances(x64):
    r = df.predict(TS, LAM, n=N_SAMPLES, alpha=ALPHA, w0=1e-3)
    c = LAM / N_SAMPLES
    np.testing.assert_array_equal(np.asarray(r.kl_divergence(c)), np.asarray(kl_divergence(r.variance, c)))
    np.testing.assert_array_equal(np.asarray(r.frechet_distance(c)),
                                  np.asarray(frechet_distance(r.variance, c)))
    assert r.kl_divergence(c).shape == TS.shape


def test_kl_gradient_wrt_lognormal_parameters_matches_finite_differences(x64):
    """jax.grad through predict's variance and the KL to a held-out covariance, w.r.t. (p_mean, p_std)."""
    rng = np.random.default_rng(2)
    basis, _, cov = _gaussian_case(rng)
    lam = N_SAMPLES * np.array([3.0, 1.0, 0.3, 0.05])

    def kl(pm, ps):  # the result's method: the tuning objective's form
        r = df.predict(800.0, lam, n=N_SAMPLES, alpha=ALPHA, w0=1e-3, sigma=df.LogNormal(pm, ps))
        return r.kl_divergence(cov, basis=basis)

    g = jax.grad(kl, argnums=(0, 1))(-1.2, 1.2)
    h = 1e-5
    for i, gi in enumerate(g):
        e = np.eye(2)[i] * h
        fd = (float(kl(-1.2 + e[0], 1.2 + e[1])) - float(kl(-1.2 - e[0], 1.2 - e[1]))) / (2 * h)
        # central differences in float64 at h = 1e-5: truncation ~h^2 f''' and rounding ~1e-16/h
        assert float(gi) == pytest.approx(fd, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("depth", [1, pytest.param(3, marks=pytest.mark.slow)])  # depth 3: reverse mode
def test_variance_gradient_at_other_depths(depth, x64):  # through the table solver compiles for minutes
    lam = N_SAMPLES * np.array([2.0, 0.1])  # one B > 0, one B < 0 direction

    def f(pm, ps):
        r = df.predict(300.0, lam, n=N_SAMPLES, alpha=ALPHA, w0=1e-2, sigma=df.LogNormal(pm, ps), depth=depth)
        return jnp.sum(jnp.log(r.variance))

    check_grads(f, (-1.2, 1.2), order=1, modes=("rev",), eps=1e-5)  # finite differences inside


# ------------------------------------------------------------------------------------------------
# dtypes, transformations, results, errors


def test_float32_default_and_close_to_float64():
    r32 = df.predict(TS, LAM, n=N_SAMPLES, alpha=ALPHA, w0=1e-3)
    assert r32.w.dtype == jnp.float32 and r32.variance.dtype == jnp.float32
    with jax.enable_x64(True):
        r64 = df.predict(TS, LAM, n=N_SAMPLES, alpha=ALPHA, w0=1e-3)
        assert r64.w.dtype == jnp.float64
    # float32: coefficients to ~1e-7, the logistic's exponent 2 B t / tau ~ 40 amplifies that to ~1e-5
    np.testing.assert_allclose(np.asarray(r32.w), np.asarray(r64.w), rtol=2e-4, atol=1e-12)
    np.testing.assert_allclose(np.asarray(r32.variance), np.asarray(r64.variance), rtol=2e-4)


def test_jit_and_vmap_over_the_distribution_agree_with_the_plain_call():
    def f(pm):
        return df.predict(TS, LAM, n=N_SAMPLES, alpha=ALPHA, w0=1e-3, sigma=df.LogNormal(pm, 1.2)).variance

    pms = jnp.array([-1.5, -1.2, 0.0])
    batched = jax.vmap(f)(pms)
    jitted = jax.jit(f)(pms[1])
    plain = f(-1.2)
    np.testing.assert_allclose(np.asarray(batched[1]), np.asarray(plain), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(plain), rtol=1e-5)


def test_to_xarray_names_the_axes():
    pytest.importorskip("xarray", reason="xarray results: the sweep extra (in the test extra)")
    ds = df.predict(TS, LAM, n=N_SAMPLES, alpha=ALPHA).to_xarray()
    assert ds.w.dims == ("t", "direction") and ds.variance.dims == ("t", "direction")
    assert ds.a.dims == ("direction",) and list(ds.t.values) == list(TS)
    np.testing.assert_allclose(ds.lam.values, LAM)


def test_bad_input_is_refused_with_the_parameter_named():
    cases = [
        (lambda: df.LogNormal(0.0, -1.0), "p_std"),
        (lambda: df.LogNormal(0.0, 6.0), "p_std"),
        (lambda: df.LogUniform(1.0, 0.5), "s_min"),
        (lambda: df.Ladder(np.array([1.0, 2.0]), np.array([0.5, 0.6])), "probs"),
        (lambda: df.Objective(precond="vp"), "precond"),
        (lambda: df.Objective(weighting="snr"), "weighting"),
        (lambda: df.Objective(sigma_data=0.0), "sigma_data"),
        (lambda: df.Objective(conditioning="independent"), "Ladder"),
        (lambda: df.predict(TS, LAM, n=N_SAMPLES, alpha=ALPHA, sigma_min=80.0, sigma_max=1.0), "sigma_min"),
        (lambda: df.predict(TS, LAM, n=N_SAMPLES, alpha=0.0), "alpha"),
        (lambda: df.predict(TS, LAM, n=N_SAMPLES, alpha=ALPHA, depth=0), "depth"),
        (lambda: df.predict(TS, LAM, n=N_SAMPLES, alpha=ALPHA, depth=3, start=(LAM, LAM)), "depth"),
        (lambda: df.predict(-TS - 1, LAM, n=N_SAMPLES, alpha=ALPHA), "t"),
        (lambda: kl_divergence(np.ones(3), np.ones(4)), "cov"),
    ]
    for make, word in cases:
        with pytest.raises(ValueError, match=word):
            make()


def test_theory_noise_protocol_is_exclusive_with_eps_and_checked():
    obj = df.Objective()
    with pytest.raises(ValueError, match="eps or noise"):
        theory.small_init_trajectory(1.0, 2.0, 0.5, w0=1e-3, noise=obj)
    with pytest.raises(ValueError, match="direction_moments"):
        theory.small_init_trajectory(1.0, 2.0, w0=1e-3, noise=object())

    class Bad:
        def direction_moments(self, lam, n):
            return jnp.ones_like(jnp.asarray(lam)), -jnp.ones_like(jnp.asarray(lam))

    with pytest.raises(ValueError, match="m"):
        theory.small_init_trajectory(1.0, 2.0, w0=1e-3, noise=Bad())


def test_objective_feeds_the_scalar_engines(x64):
    """dynamics.scalar_gd(noise=Objective) (the GD recursion of the same per-direction coefficients)
    against predict's flow: at alpha A / N <= 0.04 per step the recursion and the flow agree to ~1e-3
    where the direction has moved (the discretisation's error); the B < 0 directions decay in both."""
    from daedyn import dynamics

    alpha = 0.05
    obj = df.Objective()
    w1 = 1e-3**0.5
    tr = dynamics.scalar_gd(LAM, w1=w1, w2=w1, noise=obj, alpha=alpha, epochs=4000, n=N_SAMPLES,
                            save_every=1000)
    r = df.predict(np.asarray(tr.t), LAM, n=N_SAMPLES, alpha=alpha, w0=1e-3)
    gd = np.asarray(tr.w).T  # (times, directions)
    np.testing.assert_allclose(gd[:, :2], np.asarray(r.w[:, :2]), rtol=5e-3)
    assert np.all(gd[-1, 2:] < 1e-30) and np.all(np.asarray(r.w[-1, 2:]) < 1e-30)


def test_a_scheduled_objective_is_integrated_and_refused_by_the_closed_forms():
    from daedyn import schedules

    obj = df.Objective(df.LogNormal(-1.2, schedules.piecewise_constant([100.0], [1.2, 0.6])))
    assert float(obj.at(150.0).sigma.p_std) == pytest.approx(0.6, rel=1e-7)  # float32 values
    assert float(obj.at(50.0).sigma.p_std) == pytest.approx(1.2, rel=1e-7)
    with pytest.raises(ValueError, match="constant noise"):
        theory.small_init_trajectory(1.0, LAM, w0=1e-3, noise=obj)
