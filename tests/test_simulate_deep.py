"""Simulations at depth in pieces (daedyn.dynamics.simulate_scalar(depth=L) / simulate_matrix with L
factors) are the same recursion as one call, the old deep names left are thin aliases of the engine,
and `daedyn simulate --depth L` reports what the library computes."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from cli_helpers import run_cli

from daedyn import dynamics


def test_pieces_equal_one_call_scalar_and_matrix():
    with jax.enable_x64(True):
        lam, eps = jnp.array([1.0, 0.3]), jnp.array([0.5, 0.0])
        u = jnp.array([0.02, 0.05]) ** (1 / 3)  # the balanced start of mapping w0: every factor w0^(1/3)
        seen = []
        parts = dynamics.simulate_scalar(lam, eps, u, u, alpha=0.1, epochs=300, save_every=50, depth=3,
                                         chunk_work=200, progress=lambda d, t: seen.append(d))
        whole = dynamics.scalar_gd(lam, eps, u, u, alpha=0.1, epochs=300, save_every=50, depth=3,
                                   observables="all")
        assert seen == [100, 200, 300]  # 2 directions x 100 epochs = 200 per piece
        # pieces restart from the saved factors: the same float64 operations, so equal bit for bit
        for name in ("t", "w1", "w2", "w", "weight_norm", "loss"):
            np.testing.assert_array_equal(getattr(parts, name), getattr(whole, name))
        rng = np.random.default_rng(0)  # a coupled random start (W_1, W_2, W_3)
        ws = [0.3 * rng.standard_normal(s) for s in ((2, 3), (2, 2), (3, 2))]
        seen = []
        parts = dynamics.simulate_matrix(jnp.array([2.0, 1.0, 0.5]), *ws, eps=0.5, gamma=0.01, alpha=0.1,
                                         n=1, epochs=200, save_every=50, chunk_work=5 * 100,
                                         progress=lambda d, t: seen.append(d))
        whole = dynamics.matrix_gd(jnp.array([2.0, 1.0, 0.5]), *ws, eps=0.5, gamma=0.01, alpha=0.1, n=1,
                                   epochs=200, save_every=50)
        assert seen == [100, 200]  # (6 + 4 + 6) / 3 = 5 weights per factor x 100 epochs per piece
        for name in ("t", "mapping", "singular_values", "weight_norm", "loss"):
            np.testing.assert_array_equal(getattr(parts, name), getattr(whole, name))
        assert parts.depth == 3
        for p, w in zip(parts.ws, whole.ws, strict=True):
            np.testing.assert_array_equal(p, w)


def test_old_deep_names_are_gone():
    """The depth-L twins are one function each now (docs/migration.md)."""
    for gone in ("DeepMatrixTrajectory", "deep_matrix_flow", "simulate_deep_scalar", "simulate_deep_matrix",
                 "deep_matrix_gd", "deep_orthogonal_init", "deep_random_init"):
        assert not hasattr(dynamics, gone)
    key = jax.random.key(2)
    a = jnp.array([[0.1, 0.2], [0.1, 0.2], [0.3, 0.4]])  # (L, k): one diagonal per factor
    ws = dynamics.orthogonal_init(3, (2, 2), a[0], a[1], a[2], key=key)
    # the decoupled start: the product of the factors is diag(d_1 d_2 d_3) (section 3.2 at depth 3)
    prod = ws[2] @ ws[1] @ ws[0]
    np.testing.assert_allclose(np.diag(prod)[:2], np.prod(np.asarray(a), axis=0), rtol=1e-6)
    np.testing.assert_allclose(prod - np.diag(np.diag(prod)), 0.0, atol=1e-7)


# (--method diffrax, --eps-schedule and a coupled --noise term run at every depth since the CLI's one
# simulate path: tests/test_cli_seams.py)
@pytest.mark.parametrize("argv, match", [
    (["simulate", "--depth", "1"], "--depth must be an integer >= 2"),
    (["simulate", "--depth", "2.5"], "--depth"),
])
def test_simulate_depth_bad_usage(capsys, argv, match):
    rc, _, err = run_cli(argv, capsys)
    assert rc == 2 and match in err and "Traceback" not in err


@pytest.mark.slow  # compiles the depth-4 closed form, fixed point and threshold
def test_simulate_depth_flow_matches_closed_form_and_matrix_matches_library(capsys):
    rc, out, err = run_cli(["simulate", "--depth", "4", "--lam", "1", "--eps", "0.5", "--gamma", "0.05",
                            "--w1", "0.3", "--w2", "0.3", "--alpha", "0.05", "--epochs", "2000", "--method",
                            "rk4", "--dt", "0.05", "--x64", "--json"], capsys)
    assert rc == 0, err
    row = json.loads(out)["settings"][0]
    # RK4 with dt = 0.05 epochs against the quadrature closed form: measured 6.8e-13
    assert rc == 0 and row["max_dev_closed_form"] < 1e-10
    assert row["w_final"] == pytest.approx(row["fixed_point"], rel=1e-9)  # 2000 epochs: settled
    rc, out, _ = run_cli(["simulate", "--depth", "3", "--matrix", "--dim", "5", "--hidden", "3", "--eps",
                          "0.5", "--w1", "0.2", "--w2", "0.2", "--alpha", "0.05", "--epochs", "600", "--x64",
                          "--json"], capsys)
    rep = json.loads(out)
    with jax.enable_x64(True):
        lam = 100.0 ** (-np.arange(5) / 4)
        ws = dynamics.orthogonal_init(5, (3, 3), 0.2, key=jax.random.key(0), dtype=jnp.float64)
        want = dynamics.matrix_gd(jnp.asarray(lam), *ws, eps=0.5, alpha=0.05, n=1.0, epochs=600, save_every=3)
    got = [d["mapping"] for d in rep["directions"]]
    np.testing.assert_allclose(got, np.asarray(want.mapping[-1]), rtol=0, atol=1e-15)  # same recursion
    assert rep["hidden"] == [3, 3] and [d["mapping"] for d in rep["directions"][3:]] == [0.0, 0.0]
