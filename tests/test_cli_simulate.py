"""``daedyn simulate``: help, scalar and matrix runs checked against daedyn.theory, --json, usage errors."""

import json

import numpy as np
import pytest

from daedyn import theory
from daedyn.cli import main


def _run(capsys, *argv):
    code = main(["simulate", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--lam", "--eps", "--save-every", "--method", "--matrix", "--eigvals", "--json", "--plot"):
        assert flag in out


def test_scalar_gd_table_matches_theory(capsys):
    code, out, err = _run(capsys, "--eps", "0,1,5", "--alpha", "0.05", "--w1", "0.1", "--w2", "0.1",
                          "--epochs", "2000", "--quiet")
    assert code == 0 and err == ""
    rows = [line.split() for line in out.splitlines() if line.strip().startswith("1 ")]
    assert len(rows) == 3
    fixed = np.asarray(theory.fixed_point(1.0, np.array([0.0, 1.0, 5.0])))
    w_end = np.array([float(r[4]) for r in rows])
    # 2000 epochs at alpha = 0.05 (100 time constants): converged to the fixed point to float32 (1e-5).
    np.testing.assert_allclose(w_end, fixed, atol=1e-5)
    np.testing.assert_allclose([float(r[5]) for r in rows], fixed, rtol=1e-5)  # printed to 6 digits


def test_scalar_json_rk4_and_gd_against_closed_form(capsys):
    base = ["--lam", "1,2", "--eps", "0.5", "--w1", "0.3", "--w2", "-0.1", "--alpha", "0.01",
            "--epochs", "500", "--save-every", "50", "--json"]
    code, out, _ = _run(capsys, *base, "--method", "rk4")
    assert code == 0
    rep = json.loads(out)
    assert rep["mode"] == "scalar" and len(rep["settings"]) == 2
    for r in rep["settings"]:
        want = float(theory.dae_trajectory(500.0, r["lam"], r["eps"], 0.3, -0.1, tau=100.0))
        # RK4 with the automatic step (0.05 / rate) in float32: measured 1e-6; atol 1e-5.
        assert r["w_final"] == pytest.approx(want, abs=1e-5)
        assert r["max_dev_closed_form"] < 1e-5
        assert r["fixed_point"] == pytest.approx(float(theory.fixed_point(r["lam"], r["eps"])), rel=1e-6)
    code, out, _ = _run(capsys, *base)
    rep = json.loads(out)
    assert rep["backend"] in ("jnp", "pallas")
    for r in rep["settings"]:
        # GD is the flow's Euler scheme with step alpha / n = 0.01 (in units of tau): O(alpha) away.
        assert 1e-6 < r["max_dev_closed_form"] < 0.02


def test_scalar_weight_decay_closed_form_only_for_balanced_start(capsys):
    code, out, _ = _run(capsys, "--gamma", "0.1", "--eps", "1", "--epochs", "400", "--method", "rk4",
                        "--w1", "0.2", "--w2", "0.2", "--alpha", "0.05", "--json")
    r = json.loads(out)["settings"][0]
    assert code == 0 and r["max_dev_closed_form"] < 1e-5  # logistic form, float32 RK4
    assert r["w_final"] == pytest.approx(float(theory.fixed_point(1.0, 1.0, 0.1)), abs=1e-4)
    code, out, _ = _run(capsys, "--gamma", "0.1", "--epochs", "10", "--w1", "0.2", "--w2", "0.3", "--json")
    assert json.loads(out)["settings"][0]["max_dev_closed_form"] is None  # no closed form exists


def test_matrix_orthogonal_init_per_direction(capsys, tmp_path):
    lam = np.array([4.0, 2.0, 1.0, 0.5])
    np.save(tmp_path / "lam.npy", lam[::-1])  # any order: sorted descending on load
    plot = tmp_path / "m.png"
    code, out, err = _run(capsys, "--matrix", "--eigvals", str(tmp_path / "lam.npy"), "--hidden", "3",
                          "--eps", "1", "--alpha", "0.02", "--w1", "0.1", "--w2", "0.1", "--epochs", "3000",
                          "--method", "rk4", "--dt", "0.5", "--plot", str(plot), "--json")
    assert code == 0 and plot.stat().st_size > 0
    rep = json.loads(out)
    got = np.array([d["mapping"] for d in rep["directions"]])
    want = np.asarray(theory.dae_trajectory(3000.0, lam[:3], 1.0, 0.1, 0.1, tau=50.0))
    # Decoupled directions follow the scalar closed form (float32 RK4, dt = 0.5 epochs): atol 1e-4.
    np.testing.assert_allclose(got[:3], want, atol=1e-4)
    assert got[3] == 0.0  # direction 3 is beyond H = 3
    assert rep["max_dev_closed_form"] < 1e-4


def test_matrix_text_output_and_stability_warning(capsys):
    code, out, err = _run(capsys, "--matrix", "--dim", "5", "--hidden", "2", "--lam", "300", "--alpha",
                          "0.01", "--epochs", "20", "--init", "random", "--init-scale", "0.01")
    assert code in (0, 1)  # lam = 300 at alpha = 0.01 is past the edge: may or may not blow up in 20 steps
    assert "warning: gradient descent cannot settle" in err and "lam=300" in err
    assert "mapping" in out and "D = 5, H = 2" in out


def test_progress_lines_for_chunked_runs(capsys, monkeypatch):
    from daedyn.cli import simulate

    monkeypatch.setattr(simulate, "_CHUNK_WORK", 200)  # force 5 chunks of 200 epochs
    code, out, err = _run(capsys, "--epochs", "1000", "--save-every", "100", "--eps", "1", "--json")
    assert code == 0 and err == ""  # --json: no progress
    whole = json.loads(out)["settings"][0]["w_final"]
    code, out, err = _run(capsys, "--epochs", "1000", "--save-every", "100", "--eps", "1")
    # Off a terminal the reporter prints "compiling", the first chunk, at most one line a second, the end.
    assert "compiling" in err and " 200/1000 " in err and "100%" in err and " 1000/1000 " in err
    monkeypatch.setattr(simulate, "_CHUNK_WORK", 10**9)
    _, out1, _ = _run(capsys, "--epochs", "1000", "--save-every", "100", "--eps", "1", "--json")
    assert json.loads(out1)["settings"][0]["w_final"] == whole  # chunks continue the same recursion


def test_scalar_plot(capsys, tmp_path):
    plot = tmp_path / "w.png"
    code, out, _ = _run(capsys, "--eps", "0,1", "--epochs", "200", "--alpha", "0.05", "--plot", str(plot),
                        "--quiet")
    assert code == 0 and plot.stat().st_size > 0 and f"wrote {plot}" in out


@pytest.mark.slow  # compiling the vmapped diffrax solve takes several seconds on 2 CPU cores
def test_scalar_diffrax(capsys):
    code, out, _ = _run(capsys, "--eps", "0,1", "--w1", "0.1", "--w2", "0.2", "--alpha", "0.05",
                        "--epochs", "500", "--method", "diffrax", "--json")
    assert code == 0
    for r in json.loads(out)["settings"]:
        # Adaptive Tsit5 at the default rtol 1e-8 in float32: measured 3.6e-7; atol 1e-5.
        assert r["max_dev_closed_form"] < 1e-5
        assert r["w_final"] == pytest.approx(r["fixed_point"], abs=1e-5)


@pytest.mark.parametrize("argv,match", [
    (["--eps", "-1"], "eps"),
    (["--alpha", "0"], "alpha"),
    (["--epochs", "10", "--save-every", "3"], "multiple"),
    (["--matrix", "--eps", "0,1"], "one value"),
    (["--matrix", "--method", "diffrax"], "scalar mode only"),
])
def test_bad_values_exit_2_with_one_line(capsys, argv, match):
    code, out, err = _run(capsys, *argv)
    assert code == 2 and match in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv", [["--eps", "a,b"], ["--method", "euler"], ["--no-such-option"]])
def test_bad_options_exit_2(capsys, argv):
    with pytest.raises(SystemExit) as exc:
        main(["simulate", *argv])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "error" in err and argv[-1].lstrip("-") in err  # argparse names the option or the value


def test_library_matrix_simulation_in_pieces_is_one_run():
    import jax.numpy as jnp

    from daedyn.dynamics._simulate import simulate_matrix

    lam = jnp.array([3.0, 1.0, 0.5])
    w = 0.05 * jnp.ones((2, 3))
    kw = dict(eps=0.5, alpha=0.05, epochs=600, save_every=100)
    seen = []
    pieces = simulate_matrix(lam, w, w.T, progress=lambda d, t: seen.append((d, t)), chunk_work=1800, **kw)
    whole = simulate_matrix(lam, w, w.T, **kw)
    assert seen == [(300, 600), (600, 600)]  # 1800 / (H D = 6) = 300 epochs a piece
    np.testing.assert_array_equal(pieces.t, whole.t)
    for f in ("mapping", "singular_values", "weight_norm", "loss", "w1", "w2"):
        # Same recursion continued from the same state: equal up to float32 rounding of the restart.
        np.testing.assert_allclose(getattr(pieces, f), getattr(whole, f), rtol=1e-6, atol=1e-7)
