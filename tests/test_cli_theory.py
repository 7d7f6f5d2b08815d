"""The ``daedyn theory`` subcommand: help, printed numbers against daedyn.theory, --json, --plot and
bad usage (exit 2 with a one-line message). Runs in-process through ``daedyn.cli.main`` without
--x64 (that option changes JAX's global configuration), so everything here is float32."""

import json

import numpy as np
import pytest
from cli_helpers import run_cli as _cli

from daedyn import theory


def test_help_lists_the_options(capsys):
    rc, out, _ = _cli(["theory", "--help"], capsys)
    assert rc == 0
    for opt in ("--lam", "--eps", "--w1", "--w2", "--w0", "--gamma", "--tau", "--t-max", "--points",
                "--times", "--plot", "--json", "--device", "--x64"):
        assert opt in out


def _table(out):
    """Parse the printed report: the per-curve header rows and the w(t) table."""
    lines = out.strip().splitlines()
    blank = lines.index("")
    header = [ln.split() for ln in lines[2:blank]]
    table = np.array([[float(v) for v in ln.split()] for ln in lines[blank + 2:]])
    return header, table


def test_balanced_run_prints_the_closed_form(capsys):
    rc, out, err = _cli(["theory", "--lam", "1,2.5", "--eps", "0,1", "--gamma", "0.1", "--n", "2",
                         "--w0", "1e-4", "--tau", "3", "--t-max", "60", "--points", "7"], capsys)
    assert rc == 0 and err == ""
    header, table = _table(out)
    assert len(header) == 4 and table.shape == (7, 5)
    lam = np.array([1.0, 1.0, 2.5, 2.5])
    eps = np.array([0.0, 1.0, 0.0, 1.0])
    ts = np.linspace(0.0, 60.0, 7)
    np.testing.assert_allclose(table[:, 0], ts, rtol=1e-6)
    expect = theory.small_init_trajectory(ts[:, None], lam, eps, 0.1, w0=1e-4, tau=3.0, n=2.0)
    # printed with 6 significant digits (%.6g): relative rounding <= 5e-6 (+ float32, 1e-6)
    np.testing.assert_allclose(table[:, 1:], expect, rtol=1e-5, atol=1e-12)
    fp = theory.fixed_point(lam, eps, 0.1, 2.0)
    tl = theory.learning_time(0.9, lam, eps, 0.1, w0=1e-4, tau=3.0, n=2.0)
    np.testing.assert_allclose([float(h[4]) for h in header], fp, rtol=1e-5)
    np.testing.assert_allclose([float(h[5]) for h in header], tl, rtol=1e-5)
    # lam = 1, eps = 0, n gamma = 0.2: w* = 0.8; at t = 20 tau the gap is ~ w*^2 / (k w0 e^{32}) ~ 1e-10
    assert table[-1, 1] == pytest.approx(0.8, rel=1e-5)


def test_general_start_json(capsys):
    rc, out, _ = _cli(["theory", "--w1", "0.3", "--w2", "-1.2", "--eps", "0,5", "--times", "0,1,10,1e9",
                       "--json"], capsys)
    assert rc == 0
    report = json.loads(out)
    assert report["solution"] == "general (Eq. 5)" and report["t"] == [0.0, 1.0, 10.0, 1e9]
    eps = np.array([0.0, 5.0])
    expect = theory.dae_trajectory(np.array(report["t"])[:, None], 1.0, eps, 0.3, -1.2)
    got = np.array([c["w"] for c in report["curves"]]).T
    # JSON carries the float32 values exactly (repr of their float64 conversion)
    np.testing.assert_array_equal(got, np.asarray(expect, np.float64))
    assert got[0, 0] == pytest.approx(-0.36, rel=1e-6) and got[-1, 1] == pytest.approx(1 / 6, rel=1e-6)
    tl = theory.dae_learning_time(0.9, 1.0, eps, 0.3, -1.2)
    np.testing.assert_allclose([c["learning_time"] for c in report["curves"]], tl, rtol=1e-6)
    # the saddle line never learns: learning time null (JSON has no inf), w -> 0
    rc, out, _ = _cli(["theory", "--w1", "1", "--w2", "-1", "--times", "0,100", "--json"], capsys)
    curve = json.loads(out)["curves"][0]
    assert curve["learning_time"] is None and curve["w"] == [-1.0, 0.0]


def test_plot_writes_a_png(tmp_path, capsys):
    path = tmp_path / "w.png"
    rc, out, _ = _cli(["theory", "--eps", "0,1,5", "--plot", str(path)], capsys)
    assert rc == 0 and f"wrote {path}" in out
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


@pytest.mark.parametrize("argv, message", [
    (["--lam", "-1"], "--lam must lie in [0, inf); got -1"),
    (["--eps", "0,-0.5"], "--eps must lie in [0, inf); got -0.5"),
    (["--tau", "0"], "--tau must lie in (0, inf); got 0"),
    (["--fraction", "1"], "--fraction must lie in (0, 1); got 1"),
    (["--w0=-1e-3"], "--w0 must lie in [0, inf); got -0.001"),
    (["--times", "0,-1"], "--times must lie in [0, inf); got -1"),
    (["--points", "1"], "--points must lie in [2, 100000]; got 1"),
    (["--w1", "0.3"], "--w1 and --w2 go together"),
    (["--w1", "1", "--w2", "2", "--gamma", "0.1"], "--gamma must be 0 with --w1/--w2"),
    (["--lam", "1,x"], "argument --lam: expected comma-separated numbers"),
    (["--w0", "0.1", "--w1", "0.2"], "not allowed with argument"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_usage_is_exit_2_with_one_line(argv, message, capsys):
    rc, out, err = _cli(["theory", *argv], capsys)
    assert rc == 2 and out == ""
    last = err.strip().splitlines()[-1]
    # one line; argparse reports unknown options from the top-level parser ("daedyn:")
    assert last.startswith(("daedyn theory: error:", "daedyn: error:")) and message in last, last
    if not last.startswith("daedyn: error:") and "argument" not in last:
        assert err.count("\n") == 1  # the library's ValueError: nothing but that line
