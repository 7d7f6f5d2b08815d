"""``python -m benchmarks --gpu-check``: its plumbing, tested on a CPU. Without a GPU it refuses
before doing anything (exit 3, one clear message); ``--dry-run`` runs every step at tiny sizes."""

import json

import jax
import pytest

from benchmarks import _gpu_check
from benchmarks.__main__ import main

NO_GPU = not _gpu_check.has_gpu()


@pytest.mark.skipif(not NO_GPU, reason="a GPU is present: the check would run")
def test_refuses_cleanly_without_a_gpu(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    called = []
    monkeypatch.setattr(_gpu_check, "STEPS", (("limits", lambda *a: called.append(1)),))
    assert main(["--gpu-check"]) == _gpu_check.NO_GPU == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [err[0]] and err[0].startswith("--gpu-check needs a GPU; JAX sees only cpu device(s). "
                                                 "Nothing was run.")
    assert "--gpu-check --dry-run" in err[0] and not called  # no step started, nothing written
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(("argv", "match"), [(["--dry-run"], "--dry-run goes with --gpu-check"),
                                             (["--gpu-check", "--full"], "drop --full/--only/--json")])
def test_usage_errors(argv, match, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and match in capsys.readouterr().err


def test_help_describes_the_check(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for words in ("--gpu-check", "--dry-run", "results-gpu.json", "8 minutes", "gpu-marked", "64 settings",
                  "Figure 5", "exit 3"):
        assert words in out.replace("\n", " ") or words in out, words


def test_a_failing_step_is_recorded_and_the_others_run(tmp_path, monkeypatch):
    def boom(sizes, dry):
        raise RuntimeError("step broke")

    monkeypatch.setattr(_gpu_check, "STEPS", (("one", boom), ("two", lambda sizes, dry: {"x": 1.0})))
    out = tmp_path / "r.json"
    assert _gpu_check.run_check(dry_run=True, json_out=str(out), progress=lambda s: None) == 1
    res = json.loads(out.read_text())
    assert res["failures"] == {"one": "RuntimeError: step broke"} and res["steps"]["two"]["x"] == 1.0
    assert res["dry_run"] and res["device"].startswith(jax.devices()[0].platform)


@pytest.mark.slow  # ~40 s on the shared 2-core CPU (compilations of every step)
def test_dry_run_exercises_every_step(tmp_path):
    out = tmp_path / "dry.json"
    assert main(["--gpu-check", "--dry-run", "--json-out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert list(res["steps"]) == [name for name, _ in _gpu_check.STEPS] and not res["failures"]
    assert res["limits"]["write_bandwidth_GBps"] > 0 and res["steps"]["Figure 5"]["finite"]
    assert res["steps"]["gpu tests"]["summary"].startswith("3/")  # the gpu-marked tests, collected
    gd = res["steps"]["scalar GD"]  # the API (w time-major, its default call, all fields) against the kernel
    assert gd["api_over_kernel"] > 0 and gd["api_default_over_kernel"] > 0 and gd["api_all_over_kernel"] > 0
