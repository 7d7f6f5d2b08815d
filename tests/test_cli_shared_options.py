"""The options every computing subcommand shares (issue 28, deliverable 3): --config, --print-config,
--quiet, --json and --out; --print-config writes a file that --config reads back to the same options;
and the spinner that tells the truth about phases without steps (deliverable 5)."""

import io
import time

import pytest

from daedyn._progress import Spinner, spinner
from daedyn.cli import build_parser, main

SHARED = ("--config", "--print-config", "--quiet", "--json", "--out")
# `cache` manages the spectrum cache and computes nothing
COMPUTING = sorted(set(build_parser().subcommands) - {"cache"})
# the positional words a subcommand needs before --print-config
POSITIONAL = {"sweep": ["spec.toml"], "diffusion": ["predict"]}


@pytest.mark.parametrize("command", COMPUTING)
def test_every_computing_subcommand_has_the_shared_options(command):
    sub = build_parser(command).subcommands[command]
    options = {o for a in sub._actions for o in a.option_strings}
    assert set(SHARED) <= options, sorted(set(SHARED) - options)


@pytest.mark.parametrize("command", COMPUTING)
def test_print_config_is_read_back_by_config(command, tmp_path, capsys):
    argv = [command, *POSITIONAL.get(command, []), "--quiet", "--out", str(tmp_path / "r.nc")]
    assert main(argv + ["--print-config"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"# daedyn {command}: resolved options") and "quiet = true" in text
    (tmp_path / "c.toml").write_text(text)
    assert main([command, *POSITIONAL.get(command, []), "--config", str(tmp_path / "c.toml"),
                 "--print-config"]) == 0
    assert capsys.readouterr().out == text  # the same options, in the same words


def test_spinner_says_nothing_for_a_short_phase_and_the_wall_time_for_a_long_one():
    out = io.StringIO()
    with Spinner("quick", stream=out, delay=0.5):
        pass
    assert out.getvalue() == ""  # below the delay: silent
    with Spinner("slow phase", stream=out, delay=0.02) as sp:
        time.sleep(0.2)
    first, last = out.getvalue().splitlines()
    assert first == "slow phase ..." and last.startswith("slow phase: 0.")
    assert 0.2 <= sp.seconds < 5  # measured around 0.2 s: the phase's own wall time
    with pytest.raises(KeyboardInterrupt), Spinner("stopped", stream=out, delay=0.0):
        time.sleep(0.05)
        raise KeyboardInterrupt
    assert "stopped: interrupted after" in out.getvalue().splitlines()[-1]
    with spinner("hidden", quiet=True) as nothing:
        assert nothing is None  # --quiet / --json: no spinner at all


def test_ctrl_c_on_a_sweep_says_what_was_kept_and_how_to_resume(tmp_path, capsys, monkeypatch):
    pytest.importorskip("zarr", reason="zarr stores: the sweep extra (in the test extra)")
    from types import SimpleNamespace

    from daedyn import sweep

    spec = tmp_path / "s.toml"
    spec.write_text('function = "theory.fixed_point"\n[axes]\nlam = [1.0, 2.0]\neps = [0.0, 1.0]\n')

    def interrupted(spec, *, progress, **kw):  # two chunks of five written, then Ctrl-C
        progress(SimpleNamespace(chunks_done=2, chunks_total=5, points_per_s=10.0, final=False))
        raise KeyboardInterrupt

    monkeypatch.setattr(sweep, "run", interrupted)
    rc = main(["sweep", str(spec), "--out", str(tmp_path / "s.zarr"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 130
    assert f"interrupted; 2 of 5 chunks are kept in {tmp_path / 's.zarr'}" in err
    assert "Rerun the same command to resume" in err


@pytest.mark.parametrize("suffix", [".nc", ".zarr", ".npz", ".json"])
def test_out_by_suffix_on_theory(suffix, tmp_path, capsys):
    pytest.importorskip("xarray", reason="xarray: the sweep extra (in the test extra)")
    if suffix == ".zarr":
        pytest.importorskip("zarr", reason="zarr stores: the sweep extra (in the test extra)")
    out = tmp_path / f"t{suffix}"
    assert main(["theory", "--lam", "1,2", "--eps", "0,1", "--out", str(out), "--json"]) == 0
    report = __import__("json").loads(capsys.readouterr().out)
    assert report["out"] == str(out) and out.exists()
    # the file holds the same numbers as the JSON report: w at the last time of curve 0
    w_last = report["curves"][0]["w"][-1]
    if suffix == ".json":
        saved = __import__("json").loads(out.read_text())["curves"][0]["w"][-1]
    elif suffix == ".npz":
        import numpy as np

        saved = float(np.load(out)["w"][-1, 0])
    else:
        import xarray as xr

        ds = xr.open_dataset(out, engine="zarr") if suffix == ".zarr" else xr.open_dataset(out)
        saved = float(ds.w.isel(t=-1).sel(lam=1.0, eps=0.0).squeeze())
        ds.close()
    assert saved == pytest.approx(w_last, rel=1e-6)  # float32 written, float64 printed


def test_an_unknown_option_is_named_by_its_subcommand(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["tune", "--bogus", "1"])
    assert stop.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == \
        "daedyn tune: error: unrecognized arguments: --bogus 1"


@pytest.mark.slow  # the depth-3 closed forms compile (about 17 s on the 2-core CPU)
def test_theory_plot_at_depth_3_draws_the_threshold_and_only_reachable_fixed_points(tmp_path, monkeypatch):
    from daedyn.cli import theory as cli_theory

    figs = []
    monkeypatch.setattr(cli_theory, "save_plot", lambda fig, path: figs.append(fig) or path)
    assert main(["theory", "--lam", "1,0.05", "--gamma", "0.02", "--depth", "3", "--w0", "0.01",
                 "--plot", str(tmp_path / "t.png"), "--quiet", "--json"]) == 0
    ax = figs[0].axes[0]
    assert "depth 3" in ax.get_ylabel() and "depth 3" in ax.get_title()
    flat = {round(float(line.get_ydata()[0]), 4) for line in ax.get_lines()
            if len(set(map(float, line.get_ydata()))) == 1}
    # lam = 1: w* = (1 - 0.02) / 1 = 0.98; lam = 0.05 starts below its threshold 0.083: it decays to 0,
    # so its unreachable w* = (0.05 - 0.02) / 0.05 ... (0.494 at depth 3) is not drawn
    assert 0.9799 in flat and 0.0 in flat and 0.494 not in flat
    assert any(line.get_label().startswith("learning threshold") for line in ax.get_lines())
