"""The notebooks (jupytext percent scripts) parse as notebooks and run top to bottom.

Each is executed as a subprocess script with DAEDYN_QUICK=1 (the reduced setting) and its printed
numbers checked. Measured on the 2-core CPU: 01 15 s (default run), 02 50 s and 03 24 s (slow suite,
to keep the default run of the figure and notebook tests under ~90 s).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
NAMES = ["01_theory_tour.py", "02_real_data.py", "03_noise_tuning.py", "04_diffusion.py"]


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_a_percent_notebook(name):
    jupytext = pytest.importorskip("jupytext", reason="jupytext (test extra) is not installed")
    nb = jupytext.read(NOTEBOOKS / name)
    kinds = [c.cell_type for c in nb.cells]
    assert kinds.count("markdown") >= 3 and kinds.count("code") >= 4
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    for cell in nb.cells:  # no stored outputs: plain text only
        assert not getattr(cell, "outputs", [])


def _run(name, tmp_path):
    env = dict(os.environ, DAEDYN_QUICK="1", DAEDYN_NOTEBOOK_OUT=str(tmp_path),
               MPLBACKEND="Agg", JAX_PLATFORMS="cpu", PYTHONPATH=str(NOTEBOOKS.parent))  # this checkout
    proc = subprocess.run([sys.executable, str(NOTEBOOKS / name)], capture_output=True, text=True,
                          env=env, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_01_theory_tour(tmp_path):
    out = _run("01_theory_tour.py", tmp_path)
    assert "[1.0, 0.5, 0.1667]" in out  # the paper's fixed points
    assert "equivalent gamma for eps = 0.1: 0.0909" in out
    for n in (1, 2, 3, 4):
        assert (tmp_path / f"figure_{n}.png").is_file()


@pytest.mark.slow
def test_02_real_data(tmp_path):
    out = _run("02_real_data.py", tmp_path)
    assert "DAE :" in out and "WDAE:" in out
    assert (tmp_path / "figure_5.png").is_file() and (tmp_path / "figure_6.png").is_file()


@pytest.mark.slow
def test_03_noise_tuning(tmp_path):
    out = _run("03_noise_tuning.py", tmp_path)
    tuned = [line for line in out.splitlines() if line.startswith("tuned:")]
    grid = [line for line in out.splitlines() if line.startswith("grid:")]
    assert tuned and grid
    # gradient descent and the 201-point grid agree on s^2 to the printed 4 decimals (quick run)
    assert tuned[0].split(",")[0].split("=")[1] == grid[0].split(",")[0].split("=")[1]
    assert (tmp_path / "figure_tuning.png").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_executes_as_a_notebook(name, tmp_path, monkeypatch):
    """Each notebook converted to .ipynb and run cell by cell in a Jupyter kernel (the `notebooks`
    extra: jupytext, nbconvert, ipykernel), in the quick setting; no cell may raise."""
    jupytext = pytest.importorskip("jupytext", reason="the notebooks extra is not installed")
    pytest.importorskip("nbconvert", reason="the notebooks extra (nbconvert) is not installed")
    pytest.importorskip("ipykernel", reason="the notebooks extra (ipykernel) is not installed")
    from nbconvert.preprocessors import ExecutePreprocessor

    root = str(NOTEBOOKS.parent)
    for key, value in dict(DAEDYN_QUICK="1", DAEDYN_NOTEBOOK_OUT=str(tmp_path), MPLBACKEND="Agg",
                           JAX_PLATFORMS="cpu", PYTHONPATH=root).items():
        monkeypatch.setenv(key, value)  # the kernel inherits them; PYTHONPATH: this checkout's daedyn
    nb = jupytext.read(NOTEBOOKS / name)
    run = ExecutePreprocessor(timeout=600, kernel_name="python3")
    run.preprocess(nb, {"metadata": {"path": str(tmp_path)}})
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors


@pytest.mark.slow
def test_04_diffusion(tmp_path):
    out = _run("04_diffusion.py", tmp_path)
    gap = [line for line in out.splitlines() if line.startswith("largest relative gap:")]
    # trained vs predicted generated variance (depth 1, 16 draws per example and step): a few percent
    assert gap and float(gap[0].split(":")[1].split()[0]) < 0.1
    kl = [line for line in out.splitlines() if line.startswith("KL at T = 400:")]
    before, after = (float(v) for v in kl[0].replace("->", " ").split() if v.replace(".", "").isdigit())
    assert after < before
