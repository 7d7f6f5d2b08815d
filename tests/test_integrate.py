"""The shared time stepping (daedyn.dynamics._integrate): jumps on save times are exact."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from daedyn.dynamics._integrate import fixed_step_loop, step_grid


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_a_jump_on_a_save_time_is_never_seen_by_the_step_before_it(dtype):
    """dy/dt = r(t), a rate that jumps at every save time (pieces alternate 1 and 1000): RK4 integrates
    a piecewise-constant rate exactly, so y(t_k) = sum of r_j (t_j - t_{j-1}), unless a stage of the
    last step before a jump is evaluated past it. That step's end computed as t_{k-1} + (m - 1) h + h
    lands an ulp past t_k for some intervals (which ones depends on the compiler's rounding: a fused
    multiply-add or not); 300 random intervals make some land past it on any machine. A stage on the
    wrong piece costs h / 6 * 999 (>= 5 here: h >= 0.03); the sums reach ~2.5e5, so float32 rounding is
    up to ~0.03 (measured with the fix: passes at 2e-3 relative to 1e3, i.e. 0.5 absolute at the end;
    without it 296 of 300 saves were off, by up to 249)."""
    with jax.enable_x64(dtype == jnp.float64):
        rng = np.random.default_rng(0)
        ts = np.cumsum(rng.uniform(0.3, 3.0, 300)).astype(dtype)
        rates = np.where(np.arange(ts.size + 1) % 2 == 0, 1.0, 1000.0).astype(dtype)
        ts_j, r_j = jnp.asarray(ts), jnp.asarray(rates)

        def f(t, y, left):  # the piece in force at t (its left limit with ``left``)
            idx = jnp.where(left, jnp.searchsorted(ts_j, t, side="left"),
                            jnp.searchsorted(ts_j, t, side="right"))
            return r_j[idx]

        tsc, hs, ms, m_static = step_grid(ts_j, 0.37)

        @jax.jit
        def run(hs, ms):
            return fixed_step_loop(f, jnp.zeros((), dtype), lambda t, y: y, hs, ms, m_static, ts=ts_j)[1]

        got = np.asarray(run(jnp.asarray(hs, dtype), jnp.asarray(ms)), np.float64)
        edges = np.concatenate([[0.0], ts.astype(np.float64)])
        want = np.cumsum(rates[: ts.size] * np.diff(edges))  # interval k (ending at ts[k]) is piece k
        tol = 1e-9 if dtype == jnp.float64 else 2e-3
        np.testing.assert_allclose(got, want, rtol=0, atol=tol * max(1.0, want[-1] / 1e3))
