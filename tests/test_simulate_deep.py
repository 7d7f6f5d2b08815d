"""Deep simulations in pieces (daedyn.dynamics.simulate_deep_scalar / simulate_deep_matrix) are the
same recursion as one call, and `daedyn simulate --depth L` reports what the library computes."""

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
        a = dynamics.balanced_factors(jnp.array([0.02, 0.05]), 3)
        seen = []
        parts = dynamics.simulate_deep_scalar(lam, eps, a, alpha=0.1, epochs=300, save_every=50,
                                              chunk_work=600, progress=lambda d, t: seen.append(d))
        whole = dynamics.deep_scalar_gd(lam, eps, a, alpha=0.1, epochs=300, save_every=50)
        assert seen == [100, 200, 300]  # 2 directions x 3 factors x 100 epochs = 600 per piece
        # pieces restart from the saved factors: the same float64 operations, so equal bit for bit
        for name in ("t", "factors", "w", "weight_norm", "loss"):
            np.testing.assert_array_equal(getattr(parts, name), getattr(whole, name))
        ws = dynamics.deep_random_init(3, (2, 2), scale=0.3, key=jax.random.key(0), dtype=jnp.float64)
        parts = dynamics.simulate_deep_matrix(jnp.array([2.0, 1.0, 0.5]), ws, eps=0.5, gamma=0.01, alpha=0.1,
                                              n=1, epochs=200, save_every=50, chunk_work=16 * 100)
        whole = dynamics.deep_matrix_gd(jnp.array([2.0, 1.0, 0.5]), ws, eps=0.5, gamma=0.01, alpha=0.1, n=1,
                                        epochs=200, save_every=50)
        for name in ("t", "mapping", "singular_values", "weight_norm", "loss"):
            np.testing.assert_array_equal(getattr(parts, name), getattr(whole, name))
        for p, w in zip(parts.ws, whole.ws):
            np.testing.assert_array_equal(p, w)
    with pytest.raises(ValueError, match="method must be one of"):
        dynamics.simulate_deep_scalar(1.0, 0.0, a, alpha=0.1, epochs=10, method="diffrax")


@pytest.mark.parametrize("argv, match", [
    (["simulate", "--depth", "1"], "--depth must be an integer >= 2"),
    (["simulate", "--depth", "3", "--method", "diffrax"], "--method gd or rk4"),
    (["simulate", "--depth", "3", "--matrix", "--noise", "masking", "--p", "0.2"], "--depth 2 only"),
    (["simulate", "--depth", "3", "--eps-schedule", "linear:1,0,10"], "--depth 2 only"),
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
        ws = dynamics.deep_orthogonal_init(5, (3, 3), jnp.full((3, 3), 0.2), key=jax.random.key(0),
                                           dtype=jnp.float64)
        want = dynamics.deep_matrix_gd(jnp.asarray(lam), ws, eps=0.5, alpha=0.05, n=1.0, epochs=600,
                                       save_every=3)
    got = [d["mapping"] for d in rep["directions"]]
    np.testing.assert_allclose(got, np.asarray(want.mapping[-1]), rtol=0, atol=1e-15)  # same recursion
    assert rep["hidden"] == [3, 3] and [d["mapping"] for d in rep["directions"][3:]] == [0.0, 0.0]
