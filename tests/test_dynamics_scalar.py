"""Scalar engine: GD recursion, RK4 / diffrax flow, stability check, bad input."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from daedyn import theory
from daedyn._linear import max_hessian_eigenvalue
from daedyn.dynamics import (
    NotSaved,
    UnstableStepWarning,
    check_gd_stability,
    scalar_flow,
    scalar_gd,
)
from daedyn.dynamics import _scalar as scalar_mod

RNG = np.random.default_rng(0)
# A small grid that covers the cases: balanced and unbalanced starts, negative products, eps = 0,
# eps >> lam, weight decay on and off, n > 1.
LAM = np.array([1.0, 2.5, 0.5, 1.0, 3.0, 0.2])
EPS = np.array([0.0, 1.0, 5.0, 0.3, 0.0, 0.1])
GAMMA = np.array([0.0, 0.0, 0.1, 0.05, 0.2, 0.0])
N = np.array([1.0, 1.0, 1.0, 2.0, 1.0, 1.0])
W1 = np.array([0.1, -1.5, 0.7, 0.01, 1.2, -0.3])
W2 = np.array([0.1, 0.8, 1.9, 0.01, -0.4, 0.6])


def _python_gd(lam, eps, gamma, alpha, n, w1, w2, epochs):
    """The recursion written out as the authors' scripts do it: one trajectory, one epoch at a time."""
    out = [(w1, w2)]
    for _ in range(epochs):
        g1 = w2 * lam * (1 - w1 * w2) - eps * w2 * w2 * w1 - n * gamma * w1
        g2 = w1 * lam * (1 - w1 * w2) - eps * w1 * w1 * w2 - n * gamma * w2
        w1, w2 = w1 + alpha / n * g1, w2 + alpha / n * g2
        out.append((w1, w2))
    return np.array(out)  # (epochs + 1, 2)


def test_gd_equals_python_loop(x64):
    alpha = np.array([0.01, 0.05, 0.02, 0.3, 0.1, 0.2])
    traj = scalar_gd(LAM, EPS, W1, W2, alpha=alpha, gamma=GAMMA, n=N, epochs=60, save_every=3,
                     observables=("w1", "w2"))
    assert traj.w1.shape == (6, 21) and traj.t.shape == (21,)
    for i in range(6):
        ref = _python_gd(LAM[i], EPS[i], GAMMA[i], alpha[i], N[i], W1[i], W2[i], 60)[::3]
        # Same updates in the same order, float64: only rounding differs (fused multiply-adds);
        # measured <= 3e-16 relative, 1e-13 leaves a wide margin while catching any one-term slip.
        np.testing.assert_allclose(traj.w1[i], ref[:, 0], rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(traj.w2[i], ref[:, 1], rtol=1e-13, atol=1e-15)
    np.testing.assert_array_equal(traj.t, np.arange(0, 61, 3))


def test_gd_float32_and_save_every_and_unroll():
    base = scalar_gd(LAM, EPS, W1, W2, alpha=0.05, gamma=GAMMA, n=N, epochs=40, save_every=1, unroll=1,
                     observables="all")
    assert base.w.dtype == jnp.float32
    sparse = scalar_gd(LAM, EPS, W1, W2, alpha=0.05, gamma=GAMMA, n=N, epochs=40, save_every=8, unroll=8,
                       observables="all")
    # Unrolling and save spacing do not change the arithmetic; allow float32 rounding only (XLA may
    # fuse differently): 1e-6 relative is ~10 ulp.
    np.testing.assert_allclose(sparse.w, base.w[:, ::8], rtol=1e-6, atol=1e-7)
    ref = np.stack([_python_gd(*(np.float32(v) for v in (LAM[i], EPS[i], GAMMA[i], 0.05, N[i], W1[i], W2[i])),
                               40)[:, 0] for i in range(6)])
    # float32 both sides, 40 steps: rounding accumulates to a few ulp; 1e-5 relative is ~100 ulp.
    np.testing.assert_allclose(base.w1, ref, rtol=1e-5, atol=1e-6)


def test_observables_and_loss_match_theory(x64):
    traj = scalar_gd(LAM, EPS, W1, W2, alpha=0.02, gamma=GAMMA, n=N, epochs=10, save_every=5,
                     observables="all")
    np.testing.assert_allclose(traj.w, traj.w1 * traj.w2, rtol=1e-15)
    np.testing.assert_allclose(traj.weight_norm, traj.w1**2 + traj.w2**2, rtol=1e-15)
    tau = N / 0.02
    ref = theory.scalar_loss(traj.w1, traj.w2, LAM[:, None], EPS[:, None], GAMMA[:, None], tau[:, None],
                             N[:, None])
    # Same formula (Eq. 4 plus weight decay, 1 / tau scaling), float64: rounding only.
    np.testing.assert_allclose(traj.loss, ref, rtol=1e-13)


def test_broadcast_grid_equals_separate_runs():
    lam = jnp.array([[0.5], [1.0], [2.0]])  # (3, 1)
    eps = jnp.array([0.0, 0.5, 1.0, 4.0])  # (4,)
    grid = scalar_gd(lam, eps, 0.2, 0.3, alpha=0.1, epochs=20, save_every=10)
    assert grid.w.shape == (3, 4, 3)
    one = scalar_gd(1.0, 4.0, 0.2, 0.3, alpha=0.1, epochs=20, save_every=10)
    # Elementwise work: the grid point is computed by the same operations (float32 rounding only).
    np.testing.assert_allclose(grid.w[1, 3], one.w, rtol=1e-6)


@pytest.mark.parametrize("backend,core", [("jnp", "_fused_core"), ("scan", "_gd_core")])
def test_gd_compiles_once_per_shape(backend, core):
    kw = dict(epochs=10, save_every=5, backend=backend)
    scalar_gd(jnp.ones(7), 0.5, 0.1, 0.1, alpha=0.01, **kw)
    before = getattr(scalar_mod, core)._cache_size()
    scalar_gd(jnp.full(7, 2.0), 0.25, 0.3, 0.2, alpha=0.02, gamma=0.1, **kw)  # new values, same shapes
    assert getattr(scalar_mod, core)._cache_size() == before


# ------------------------------------------------------------------------------------------------
# Backends: fused jnp recursion, the Pallas kernel (interpreted on CPU), the textbook scan


def _backend_runs(dtype, backends=("scan", "jnp", "interpret")):
    lam = jnp.array([[0.5], [1.0], [2.0]], dtype)  # (3, 1) x (4,): a broadcast grid
    eps = jnp.array([0.0, 0.5, 1.0, 4.0], dtype)
    gamma = jnp.array([0.0, 0.01, 0.1, 0.0], dtype)
    kw = dict(alpha=jnp.asarray(0.1, dtype), gamma=gamma, n=jnp.asarray(2.0, dtype), epochs=300,
              save_every=3, observables="all")
    # Unbalanced start with w = w1 w2 < 0: crosses zero, so every quantity is exercised.
    return {b: scalar_gd(lam, eps, jnp.asarray(0.2, dtype), jnp.asarray(-0.3, dtype), backend=b, **kw)
            for b in backends}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_backends_agree_on_every_quantity(dtype, x64):
    runs = _backend_runs(jnp.dtype(dtype))
    ref = runs["scan"]
    # Quantities are O(1) (loss O(0.1)); the fused backends fold the constants differently from the
    # textbook update, so they agree to rounding: measured max |difference| 4.4e-16 (float64) and
    # 9.5e-7 (float32) over 300 epochs, for every field. atol 1e-14 / 1e-5 leaves > 10x margin
    # (relative tolerances are meaningless where w1 and w cross zero).
    atol = 1e-14 if dtype == "float64" else 1e-5
    for name in ("jnp", "interpret"):
        run = runs[name]
        np.testing.assert_array_equal(run.t, ref.t)
        for field in ("w1", "w2", "w", "weight_norm", "loss"):
            x, y = getattr(run, field), getattr(ref, field)
            assert x.dtype == jnp.dtype(dtype) and x.shape == y.shape == (3, 4, 101), (name, field)
            np.testing.assert_allclose(x, y, rtol=0, atol=atol, err_msg=f"{name} {field}")
    for field in ("w1", "w2", "w", "weight_norm", "loss"):  # the same jnp code inside and outside Pallas
        np.testing.assert_array_equal(getattr(runs["jnp"], field), getattr(runs["interpret"], field))


def test_fused_equals_python_loop_save_every_epoch(x64):
    alpha = np.array([0.01, 0.05, 0.02, 0.3, 0.1, 0.2])
    traj = scalar_gd(LAM, EPS, W1, W2, alpha=alpha, gamma=GAMMA, n=N, epochs=40, backend="interpret",
                     observables=("w1", "w2"))
    for i in range(6):
        ref = _python_gd(LAM[i], EPS[i], GAMMA[i], alpha[i], N[i], W1[i], W2[i], 40)
        # float64, folded constants vs the textbook update: rounding only (measured <= 4e-16 absolute).
        np.testing.assert_allclose(traj.w1[i], ref[:, 0], rtol=0, atol=1e-14)
        np.testing.assert_allclose(traj.w2[i], ref[:, 1], rtol=0, atol=1e-14)


def test_backend_choice_and_validation():
    from daedyn.dynamics import choose_backend

    gpu = jax.default_backend() == "gpu"
    assert choose_backend("auto", epochs=1000, save_every=100) == ("pallas" if gpu else "jnp")
    dense_all = choose_backend("auto", epochs=1000, save_every=1, observables="all")
    assert dense_all == ("pallas" if gpu else "scan")
    w_only = choose_backend("auto", epochs=1000, save_every=1, observables=("w",))
    assert w_only == ("pallas" if gpu else "jnp")
    assert choose_backend("auto", epochs=1000, save_every=1) == w_only  # the default saves w alone
    assert choose_backend("auto", epochs=0) == "scan"  # nothing for the fused kernel to do
    assert choose_backend("auto", epochs=1000, save_every=100, dtype=np.float64) == "jnp"  # Pallas: f32
    start = scalar_gd(1.0, 0.5, 0.3, 0.4, alpha=0.1, epochs=0)
    assert start.w.shape == (1,) and float(start.w[0]) == pytest.approx(0.12)
    with pytest.raises(ValueError, match="backend"):
        scalar_gd(1.0, 0.5, 0.3, 0.4, alpha=0.1, epochs=3, backend="cuda")


@pytest.mark.parametrize("backend", ["jnp", "interpret"])
def test_fused_backends_are_differentiable(backend, x64):
    def w_end(eps, backend):
        return scalar_gd(1.0, eps, 0.3, 0.4, alpha=0.1, gamma=0.02, epochs=50, save_every=25,
                         backend=backend, check_stability=False).w[-1]

    g = jax.grad(w_end)(0.5, backend)
    ref = jax.grad(w_end)(0.5, "scan")
    # Both differentiate the same recursion (the kernel's derivative runs the jnp path): rounding only.
    np.testing.assert_allclose(g, ref, rtol=1e-12)
    fd = (w_end(0.5 + 1e-6, backend) - w_end(0.5 - 1e-6, backend)) / 2e-6
    np.testing.assert_allclose(g, fd, rtol=1e-6)  # central difference, float64: ~1e-9 relative error


@pytest.mark.gpu
def test_pallas_backend_equals_cpu_scan():
    args = (jnp.linspace(0.1, 3.0, 2000), jnp.linspace(0.0, 2.0, 2000), 0.1, 0.05)
    gpu = scalar_gd(*args, alpha=0.05, epochs=200, save_every=2, backend="pallas")
    cpu_dev = jax.devices("cpu")[0]
    with jax.default_device(cpu_dev):
        cpu = scalar_gd(*(jax.device_put(a, cpu_dev) for a in args), alpha=0.05, epochs=200, save_every=2,
                        backend="scan")
    for field in ("w1", "w2", "w", "weight_norm", "loss"):
        # float32, 200 epochs, different constant folding and GPU FMA contraction: 2e-5 absolute on O(1).
        np.testing.assert_allclose(np.asarray(getattr(gpu, field)), np.asarray(getattr(cpu, field)),
                                   rtol=0, atol=2e-5)


def _rk4_error(dt, ts, args, tau):
    traj = scalar_flow(ts, *args, tau=tau, dt=dt)
    closed = theory.dae_trajectory(ts[None], *(a[:, None] for a in args), tau=tau)
    return np.max(np.abs(np.asarray(traj.w) - np.asarray(closed)))


def test_rk4_matches_closed_form_any_start(x64):
    ts = jnp.linspace(0.0, 30.0, 7)
    args = (LAM, EPS, W1, W2)
    traj = scalar_flow(ts, *args, tau=2.0, dt=0.01)
    args = tuple(a[:, None] for a in args)
    ts = ts[None]
    closed = theory.dae_trajectory(ts, *args, tau=2.0)
    # RK4 at dt = 0.01: measured max error of w 8e-12 (scipy DOP853 at rtol 1e-13 agrees with the
    # closed form to 2e-12); atol 1e-10.
    np.testing.assert_allclose(traj.w, closed, rtol=0, atol=1e-10)
    w1c, w2c = theory.dae_weights(ts, *args, tau=2.0)
    # The single weights drift along the fixed-point manifold w1 w2 = w* (a neutral direction, so
    # truncation errors are not damped): measured 2.7e-7 (1.5e-7 relative) at dt = 0.01, shrinking
    # 16x per halving of dt; rtol 1e-6.
    np.testing.assert_allclose(traj.w1, w1c, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(traj.w2, w2c, rtol=1e-6, atol=1e-9)


def test_rk4_measured_order_is_four(x64):
    ts = jnp.array([0.0, 2.0, 4.0, 6.0, 8.0])
    args = (jnp.array([1.0, 2.0]), jnp.array([1.0, 0.5]), jnp.array([0.3, -1.0]), jnp.array([0.5, 1.5]))
    errs = [_rk4_error(dt, ts, args, 1.0) for dt in (0.2, 0.1, 0.05)]
    orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    # Classical RK4 has global order 4; at these step sizes the measured orders are 3.9-4.0.
    # Bounds [3.6, 4.4] tell order 4 from 3 or 5 with room for the pre-asymptotic regime.
    assert np.all((orders > 3.6) & (orders < 4.4)), (errs, orders)


def test_gd_approaches_flow_with_small_alpha(x64):
    # Fixed physical time t / tau = 3 (tau = n / alpha): GD is Euler with step alpha / n, error O(alpha).
    args = (jnp.array([1.0, 2.0]), jnp.array([0.5, 1.0]), jnp.array([0.2, -0.8]), jnp.array([0.6, 1.1]))
    errs = []
    for alpha in (0.02, 0.01, 0.005):
        epochs = int(round(3 / alpha))
        traj = scalar_gd(*args, alpha=alpha, epochs=epochs, save_every=epochs)
        errs.append(np.max(np.abs(traj.w[:, -1] - theory.dae_trajectory(3 / alpha, *args, tau=1 / alpha))))
    orders = np.log2(np.array(errs[:-1]) / np.array(errs[1:]))
    # Euler is first order: measured 0.99-1.0; [0.85, 1.15] excludes orders 0 and 2.
    assert np.all((orders > 0.85) & (orders < 1.15)), (errs, orders)


def test_rk4_with_weight_decay_matches_small_init_closed_form(x64):
    ts = jnp.linspace(0.0, 400.0, 9)
    lam, eps, gamma = jnp.array([1.0, 1.0, 0.5]), jnp.array([0.0, 0.4, 0.2]), jnp.array([0.1, 0.2, 0.6])
    u = 1e-2
    traj = scalar_flow(ts, lam, eps, u, u, tau=10.0, gamma=gamma, n=1, dt=0.25)
    closed = theory.small_init_trajectory(ts[None], lam[:, None], eps[:, None], gamma[:, None], w0=u * u,
                                          tau=10.0, n=1)
    # Balanced start stays balanced, so the logistic form is exact. RK4 at dt = 0.25 (step x rate
    # <= 0.05): measured 3.6e-9 (5.8e-8 at dt = 0.5: order 4); atol 2e-8.
    np.testing.assert_allclose(traj.w, closed, rtol=0, atol=2e-8)
    # The decay-dominated direction (lam < n gamma) goes to 0, the others to 1 - n gamma/lam shrunk by eps.
    np.testing.assert_allclose(traj.w[:, -1], theory.fixed_point(lam, eps, gamma), atol=1e-6)  # e^-40 tail


def test_rk4_float32_accuracy():
    ts = jnp.linspace(0.0, 20.0, 5)
    args = (LAM[:4], EPS[:4], W1[:4], W2[:4])
    traj = scalar_flow(ts, *args, dt=0.01)
    assert traj.w.dtype == jnp.float32
    with jax.enable_x64(True):
        closed = np.asarray(theory.dae_trajectory(np.asarray(ts, np.float64)[None],
                                                  *(a[:, None] for a in args)))
    # float32, 2000 steps: rounding of the increments dominates (measured 1.3e-6); 1e-5 abs.
    np.testing.assert_allclose(traj.w, closed, rtol=0, atol=1e-5)


def test_uneven_save_times_use_dynamic_steps(x64):
    ts = jnp.array([0.0, 0.01, 0.02, 5.0, 9.5])  # very uneven: traced per-interval step counts
    args = (jnp.array([1.0, 3.0]), jnp.array([0.2, 1.0]), jnp.array([0.4, -0.2]), jnp.array([0.1, 0.9]))
    traj = scalar_flow(ts, *args, dt=0.01)
    # dt = 0.01 with lam + eps = 4: measured 1.3e-9 (from the step sizes near dt); atol 5e-9.
    closed = theory.dae_trajectory(ts[None], *(a[:, None] for a in args))
    np.testing.assert_allclose(traj.w, closed, rtol=0, atol=5e-9)
    assert traj.w.shape == (2, 5)


@pytest.mark.slow  # compiling the vmapped diffrax solve takes ~17 s on 2 CPU cores
def test_diffrax_matches_closed_form(x64):
    ts = jnp.linspace(0.0, 15.0, 6)
    args = (LAM[:4], EPS[:4], W1[:4], W2[:4])
    traj = scalar_flow(ts, *args, method="diffrax", rtol=1e-10, atol=1e-12)
    # Adaptive Tsit5 at rtol 1e-10 per trajectory: measured 2e-11 global error; atol 1e-8.
    np.testing.assert_allclose(traj.w, theory.dae_trajectory(ts[None], *(a[:, None] for a in args)),
                               rtol=0, atol=1e-8)


def test_rk4_is_differentiable_in_eps(x64):
    ts = jnp.array([0.0, 3.0])

    def w_end(eps):
        return scalar_flow(ts, 1.0, eps, 0.3, 0.4, dt=0.01).w[-1]

    g = jax.grad(w_end)(0.5)
    fd = (w_end(0.5 + 1e-5) - w_end(0.5 - 1e-5)) / 2e-5
    # Central difference, h = 1e-5, float64: truncation ~1e-10, rounding ~1e-11; rtol 1e-6.
    np.testing.assert_allclose(g, fd, rtol=1e-6)


# ------------------------------------------------------------------------------------------------
# Stability (supplement D)


def _per_sample_loss(w, lam, eps, gamma, n):
    p = w[0] * w[1]
    return (lam * (1 - p) ** 2 + eps * p**2) / (2 * n) + gamma / 2 * (w[0] ** 2 + w[1] ** 2)


_hessian = jax.jit(jax.hessian(_per_sample_loss))


def _numeric_hmax(lam, eps, gamma, n, w1, w2):
    return np.linalg.eigvalsh(np.asarray(_hessian(jnp.array([w1, w2]), lam, eps, gamma, n)))[-1]


@pytest.mark.parametrize("lam,eps,gamma,n", [(1.0, 0.0, 0.0, 1.0), (2.0, 3.0, 0.0, 1.0), (1.0, 0.5, 0.2, 2.0),
                                             (1.0, 0.0, 2.0, 1.0), (0.3, 0.1, 0.05, 1.0)])
def test_max_hessian_eigenvalue_balanced(lam, eps, gamma, n, x64):
    u = np.sqrt(max(0.0, (lam - n * gamma) / (lam + eps)))
    # Closed form vs the eigenvalues of jax.hessian at the balanced fixed point: rounding only.
    numeric = _numeric_hmax(lam, eps, gamma, n, u, u)
    np.testing.assert_allclose(max_hessian_eigenvalue(lam, eps, gamma, n), numeric, rtol=1e-12)


def test_max_hessian_eigenvalue_off_balance_start(x64):
    lam, eps, w1, w2 = 1.0, 5.0, 1.5, -0.4
    end = theory.dae_weights(1e6, lam, eps, w1, w2)  # where the flow from (w1, w2) settles
    np.testing.assert_allclose(max_hessian_eigenvalue(lam, eps, w1=w1, w2=w2),
                               _numeric_hmax(lam, eps, 0.0, 1.0, float(end[0]), float(end[1])), rtol=1e-9)


def test_stability_threshold_is_where_gd_stops_settling(x64):
    lam, eps = 1.0, 0.5
    h = float(max_hessian_eigenvalue(lam, eps))  # 2 lam / n = 2 at the balanced point
    start = dict(w1=0.6, w2=0.6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning below the edge
        ok = scalar_gd(lam, eps, alpha=1.9 / h, epochs=2000, save_every=2000, **start)
    with pytest.warns(UnstableStepWarning, match=r"lam=1, alpha=1\.05"):
        bad = scalar_gd(lam, eps, alpha=2.1 / h, epochs=2000, save_every=2000, **start)
    w_star = lam / (lam + eps)
    assert abs(float(ok.w[-1]) - w_star) < 1e-8  # converged: contraction 0.9 per step, 2000 steps
    assert not abs(float(bad.w[-1]) - w_star) < 1e-2  # oscillates or diverges instead


def test_check_gd_stability_reports_and_returns():
    with pytest.warns(UnstableStepWarning, match=r"2 of 3 setting\(s\).*lam=300") as rec:
        edge = check_gd_stability(jnp.array([1.0, 150.0, 300.0]), 0.0, 0.0, alpha=0.01)
    assert len(rec) == 1
    np.testing.assert_allclose(edge, [0.02, 3.0, 6.0], rtol=1e-12)  # alpha * 2 lam / n, exact arithmetic
    assert jax.jit(lambda a: check_gd_stability(1.0, alpha=a) is None)(0.1)


# ------------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize("kwargs,match", [
    (dict(eps=-1.0), "eps"),
    (dict(alpha=0.0), "alpha"),
    (dict(alpha=-0.1), "alpha"),
    (dict(lam=-2.0), "lam"),
    (dict(lam=np.nan), "lam"),
    (dict(w1=np.inf), "w1"),
    (dict(gamma=-0.1), "gamma"),
    (dict(epochs=10, save_every=3), "multiple"),
    (dict(epochs=-1), "epochs"),
    (dict(lam=np.ones(3), eps=np.ones(2)), "broadcast"),
])
def test_gd_bad_input(kwargs, match):
    args = dict(lam=1.0, eps=0.5, w1=0.1, w2=0.1, alpha=0.01, epochs=10, save_every=1) | kwargs
    with pytest.raises(ValueError, match=match):
        scalar_gd(args.pop("lam"), args.pop("eps"), args.pop("w1"), args.pop("w2"), **args)


@pytest.mark.parametrize("kwargs,match", [
    (dict(tau=0.0), "tau"),
    (dict(dt=-0.1), "dt"),
    (dict(ts=jnp.array([0.0, 2.0, 1.0])), "non-decreasing"),
    (dict(ts=jnp.array([-1.0, 2.0])), "ts"),
    (dict(method="euler"), "method"),
    (dict(eps=-0.5), "eps"),
])
def test_flow_bad_input(kwargs, match):
    args = dict(ts=jnp.array([0.0, 1.0]), eps=0.5, tau=1.0, dt=0.1) | kwargs
    with pytest.raises(ValueError, match=match):
        scalar_flow(args.pop("ts"), 1.0, args.pop("eps"), 0.1, 0.1, **args)


@pytest.mark.parametrize("backend", ["scan", "jnp", "interpret"])
def test_outputs_subset_equals_the_full_run(backend):
    lam = jnp.array([0.5, 1.0, 2.0])[:, None]
    eps = jnp.array([0.0, 1.0])
    kw = dict(alpha=0.05, epochs=60, save_every=3, gamma=0.01, n=2.0, backend=backend)
    full = scalar_gd(lam, eps, 0.2, -0.1, observables="all", **kw)
    only_w = scalar_gd(lam, eps, 0.2, -0.1, observables=("w",), **kw)
    assert all(isinstance(getattr(only_w, f), NotSaved) for f in ("w1", "w2", "weight_norm", "loss"))
    assert only_w.w.shape == full.w.shape == (3, 2, 21)
    # On "jnp"/"interpret" w comes straight from the kernel (w1 w2 formed in-kernel), elsewhere from
    # the same products: equal to float32 rounding of one product (2 ulp of O(1) values).
    np.testing.assert_allclose(only_w.w, full.w, rtol=0, atol=5e-7)
    some = scalar_gd(lam, eps, 0.2, -0.1, observables=("loss", "w1"), **kw)
    assert isinstance(some.w, NotSaved) and isinstance(some.w2, NotSaved)
    # the loss is formed after the loop; XLA fuses it with whichever other fields are asked for, and
    # the CPU code generator may contract a multiply-add differently (measured: 1 ulp, 1 of 126
    # entries, scan backend, time-major program)
    np.testing.assert_array_max_ulp(some.loss, full.loss, maxulp=1)
    np.testing.assert_array_equal(some.w1, full.w1)


def test_outputs_validation_and_gradient_through_w_only():
    with pytest.raises(ValueError, match="observables must be \"all\" or a non-empty subset"):
        scalar_gd(1.0, 0.0, 0.1, 0.1, alpha=0.1, epochs=2, observables=("q",))
    with pytest.raises(ValueError, match="observables must be \"all\" or a non-empty subset"):
        scalar_gd(1.0, 0.0, 0.1, 0.1, alpha=0.1, epochs=2, observables=())
    f = lambda e, b: scalar_gd(1.0, e, 0.1, 0.1, alpha=0.1, epochs=20, observables="w", backend=b,
                               check_stability=False).w[-1]
    g_jnp, g_scan = jax.grad(f)(0.5, "jnp"), jax.grad(f)(0.5, "scan")
    np.testing.assert_allclose(g_jnp, g_scan, rtol=1e-5)  # float32: the two recursions' rounding
