"""scalar_gd's fast output path: time-major layout, only the fields asked for, the start saved by
the kernel itself; same numbers as the batch-major reference path."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from daedyn._kernels import scalar_gd_fused
from daedyn.dynamics import NotSaved, UnstableStepWarning, scalar_gd

LAM = jnp.array([0.5, 1.0, 2.0, 3.0])[:, None]
EPS = jnp.array([0.0, 1.0, 4.0])
KW = dict(alpha=0.05, gamma=0.01, n=2.0, check_stability=False)
# (save_every, observables): dense and all, dense and the default (w), sparse and some
CASES = [(1, "all"), (1, None), (4, ("w2", "loss"))]


@pytest.mark.parametrize("backend", ["scan", "jnp"])
@pytest.mark.parametrize(("save_every", "observables"), CASES)
def test_time_major_is_the_transpose_bitwise(backend, save_every, observables):
    kw = dict(KW, epochs=24, save_every=save_every, backend=backend, observables=observables)
    bm = scalar_gd(LAM, EPS, 0.2, -0.1, **kw)
    tm = scalar_gd(LAM, EPS, 0.2, -0.1, time_major=True, **kw)
    np.testing.assert_array_equal(tm.t, bm.t)
    for name in ("w1", "w2", "w", "weight_norm", "loss"):
        a, b = getattr(tm, name), getattr(bm, name)
        asked = observables == "all" or name in (observables or ("w",))
        assert isinstance(a, NotSaved) == isinstance(b, NotSaved) == (not asked), name
        if asked:
            assert a.shape == (24 // save_every + 1, 4, 3) and b.shape == (4, 3, 24 // save_every + 1)
            if backend == "scan" and name == "loss":
                # the loss is formed after the loop, fused by XLA over either layout: the CPU code
                # generator may contract a multiply-add differently (measured: 1 ulp, a few entries)
                np.testing.assert_array_max_ulp(a, jnp.moveaxis(b, -1, 0), maxulp=1)
            else:  # the same values up to the final transpose: bitwise equal
                np.testing.assert_array_equal(a, jnp.moveaxis(b, -1, 0), err_msg=name)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_fast_path_equals_the_scan_reference(dtype, x64):
    """Fused kernel fields (start saved in-kernel, loss from the kernel's w and weight_norm) vs the
    textbook scan recursion with the observables formed after the loop."""
    lam, eps = LAM.astype(dtype), EPS.astype(dtype)
    kw = dict(KW, epochs=30, save_every=1, observables="all")
    ref = scalar_gd(lam, eps, 0.2, -0.1, backend="scan", **kw)
    for backend in ("jnp", "interpret") if dtype == jnp.float32 else ("jnp",):  # Pallas: float32 only
        fast = scalar_gd(lam, eps, 0.2, -0.1, backend=backend, time_major=True, **kw)
        assert fast.w.dtype == dtype
        # The fused recursion folds the per-trajectory constants (other rounding per epoch); over
        # 30 epochs measured <= 1e-6 relative in float32 and ~1e-15 in float64: 20x margins.
        tol = dict(rtol=2e-5, atol=2e-6) if dtype == jnp.float32 else dict(rtol=1e-13, atol=1e-14)
        for name in ("w1", "w2", "w", "weight_norm", "loss"):
            np.testing.assert_allclose(getattr(fast, name), jnp.moveaxis(getattr(ref, name), -1, 0),
                                       err_msg=f"{backend} {name}", **tol)
        # the start is the input itself, exactly (row 0 written by the kernel)
        np.testing.assert_array_equal(fast.w1[0], jnp.broadcast_to(jnp.asarray(0.2, dtype), (4, 3)))


@pytest.mark.parametrize(("save_every", "backend"), [
    (1, "jnp"), (5, "jnp"),  # two code paths: save-then-step scan, concatenation
    pytest.param(1, "interpret", marks=pytest.mark.slow)])  # ~8 s; scalar_gd's test above covers it too
def test_kernel_with_start_adds_row_zero_only(save_every, backend):
    k1, k2 = jax.random.split(jax.random.key(3))
    lam = jax.random.uniform(k1, (50,), minval=0.1, maxval=2.0)
    w1 = jax.random.uniform(k2, (50,), minval=-1.0, maxval=1.0)
    args = (lam, 0.5 * lam, jnp.full((50,), 0.01), jnp.full((50,), 0.05), w1, 0.3 - w1)
    q = ("w1", "w", "weight_norm")
    kw = dict(n_saves=6, save_every=save_every, quantities=q, backend=backend,
              **({"block": 25} if backend == "interpret" else {}))
    plain = scalar_gd_fused(*args, **kw)
    start = scalar_gd_fused(*args, with_start=True, **kw)
    for p, s, want0 in zip(plain, start, (args[4], args[4] * args[5], args[4] ** 2 + args[5] ** 2)):
        assert s.shape == (7, 50)
        np.testing.assert_array_equal(s[1:], p)  # same recursion, same rounding
        # row 0 formed in the kernel: w exact, w1^2 + w2^2 within 1 ulp (a fused multiply-add)
        np.testing.assert_array_max_ulp(s[0], want0, maxulp=1)
    for s, b in zip(start, scalar_gd_fused(*args, with_start=True, time_major=False, **kw)):
        np.testing.assert_array_equal(b, s.T)


def test_time_major_divergence_still_warns():
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        out = scalar_gd(jnp.array([0.1, 50.0]), 0.0, 0.5, 0.5, alpha=1.0, epochs=40, check_stability=False,
                        time_major=True, observables=("w",))
    assert out.w.shape == (41, 2) and not np.isfinite(out.w[-1, 1]) and np.isfinite(out.w[-1, 0])
    assert any(issubclass(w.category, UnstableStepWarning) and "1 of 2" in str(w.message) for w in seen)


def test_time_major_is_differentiable():
    f = lambda e, tm: scalar_gd(1.0, e, 0.1, 0.1, alpha=0.1, epochs=20, observables=("loss",), backend="jnp",
                                check_stability=False, time_major=tm).loss.sum()
    np.testing.assert_array_equal(jax.grad(f)(0.5, True), jax.grad(f)(0.5, False))  # same sum, same graph


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize(("backend", "epochs"), [("scan", 12), ("jnp", 12), ("scan", 0)])
def test_batch_major_default_is_a_layout_not_a_copy(dtype, backend, epochs, x64):
    """Concrete calls: the (*batch, T) fields are the time-major results with the time axis still
    outermost in memory (a device layout, dynamics/_layout.py): bitwise the traced (transposed)
    results, and the caller's arrays are left alone (the results are donated, not the inputs)."""
    lam = jnp.asarray([[0.5], [1.0], [2.0]], dtype)
    eps, w1 = jnp.asarray([0.0, 1.0], dtype), jnp.full((3, 2), 0.2, dtype)
    kw = dict(alpha=0.05, epochs=epochs, gamma=0.01, backend=backend, check_stability=False,
              observables="all")
    eager = scalar_gd(lam, eps, w1, -0.1, **kw)
    traced = jax.jit(lambda *a: scalar_gd(*a, **kw))(lam, eps, w1, -0.1)  # the caller's program: a transpose
    for name in ("w1", "w2", "w", "weight_norm", "loss"):
        a, b = getattr(eager, name), getattr(traced, name)
        assert a.shape == b.shape == (3, 2, epochs + 1) and a.dtype == dtype
        assert a.format.layout.major_to_minor == (2, 0, 1)  # T outermost in memory
        if name == "loss" and backend == "scan":  # formed after the loop, fused per program: 1 ulp
            np.testing.assert_array_max_ulp(a, b, maxulp=1)
        else:
            np.testing.assert_array_equal(a, b, err_msg=name)
    np.testing.assert_array_equal(np.asarray(eager.w)[:, :, 0], np.asarray(w1) * -0.1)  # host copy
    assert float(jnp.sum(w1 + lam)) == pytest.approx(2 * 3.5 + 6 * 0.2)  # inputs still alive


def test_scalar_batch_and_time_major_keep_the_plain_layout():
    one = scalar_gd(1.0, 0.5, 0.1, 0.1, alpha=0.1, epochs=4, check_stability=False)
    assert one.w.shape == (5,)  # no batch axis: nothing to relay out
    tm = scalar_gd(jnp.ones(3), 0.5, 0.1, 0.1, alpha=0.1, epochs=4, check_stability=False, time_major=True)
    assert tm.w.shape == (5, 3) and tm.w.format.layout.major_to_minor == (0, 1)
