"""The on-disk spectrum cache: keyed by data and options, used when asked (or inside caching(), as
the CLI does), robust to damaged entries, cleared by `daedyn cache clear`; never in the user's home
during tests."""

import json
import os

import jax
import numpy as np
import pytest
from cli_helpers import run_cli

from daedyn import _cache, spectrum


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("DAEDYN_CACHE", str(folder))
    return folder


def _entries(folder):
    d = folder / "spectra"
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


X = np.random.default_rng(0).random((40, 6)).astype(np.float32)


def test_hit_returns_the_stored_result_without_computing(cache, monkeypatch):
    first = spectrum.compute_spectrum(X, cache=True)
    assert len(_entries(cache)) == 1
    monkeypatch.setattr(spectrum, "eigh_desc", lambda s: pytest.fail("recomputed on a cache hit"))
    again = spectrum.compute_spectrum(X.copy(), cache=True)  # same bytes: the same key
    np.testing.assert_array_equal(again.eigvals, first.eigvals)  # bit-identical: read back, not recomputed
    np.testing.assert_array_equal(again.eigvecs, first.eigvecs)
    assert again.n == 40 and again.eigvals.dtype == first.eigvals.dtype


def test_key_covers_data_and_options(cache):
    spectrum.compute_spectrum(X, cache=True)
    spectrum.compute_spectrum(X, cache=True, chunk_size=7)
    spectrum.compute_spectrum(X, cache=True, accumulate_dtype=np.float64)
    spectrum.compute_spectrum(X, cache=True, accumulate_dtype="float64")  # the same dtype: the same entry
    y = X.copy()
    y[0, 0] += 1e-3
    spectrum.compute_spectrum(y, cache=True)
    assert len(_entries(cache)) == 4


def test_float64_cached_equals_computed(cache):
    with jax.enable_x64(True):
        x = X.astype(np.float64)
        cold = spectrum.compute_spectrum(x, cache=True)
        hit = spectrum.compute_spectrum(x, cache=True)
        plain = spectrum.compute_spectrum(x, cache=False)
        assert hit.eigvals.dtype == np.float64
        np.testing.assert_array_equal(hit.eigvals, plain.eigvals)  # same computation, stored losslessly
        np.testing.assert_array_equal(cold.eigvecs, hit.eigvecs)
    assert len(_entries(cache)) == 1


def test_default_is_off_outside_caching_and_on_inside(cache):
    spectrum.compute_spectrum(X)
    assert _entries(cache) == []  # library calls write nothing by default
    with _cache.caching():
        spectrum.compute_spectrum(X)
        with _cache.caching(False):
            spectrum.compute_spectrum(X * 2)
    assert len(_entries(cache)) == 1


def test_damaged_entry_is_recomputed_and_replaced(cache):
    good = spectrum.compute_spectrum(X, cache=True)
    (entry,) = _entries(cache)
    (cache / "spectra" / entry).write_bytes(b"not an npz")
    with pytest.warns(RuntimeWarning, match=f"spectrum cache entry .*{entry} is damaged"):  # names the file
        again = spectrum.compute_spectrum(X, cache=True)
    np.testing.assert_array_equal(again.eigvals, good.eigvals)
    with np.load(cache / "spectra" / entry) as f:
        assert str(f["format"]) == _cache.FORMAT


def test_cli_cache_info_and_clear(cache, capsys):
    spectrum.compute_spectrum(X, cache=True)
    rc, out, _ = run_cli(["cache", "info", "--json"], capsys)
    info = json.loads(out)
    assert rc == 0 and info["path"] == str(cache) and info["spectra"] == 1 and info["bytes"] > 0
    rc, out, _ = run_cli(["cache", "clear"], capsys)
    assert rc == 0 and out.startswith("removed 1 cached spectra") and _entries(cache) == []


def test_test_runs_never_use_the_home_cache():
    home = os.path.expanduser("~")
    assert os.environ.get("DAEDYN_CACHE") and not _cache.cache_dir().startswith(os.path.join(home, ".cache"))


def test_the_cli_caches_unless_no_cache(cache, capsys, monkeypatch):
    from daedyn.cli import theory as cli_theory

    monkeypatch.setattr(cli_theory, "run", lambda args: spectrum.compute_spectrum(X) and 0)
    rc, _, err = run_cli(["theory", "--no-cache"], capsys)
    assert rc == 0 and _entries(cache) == [], err  # --no-cache: nothing written
    rc, _, err = run_cli(["theory"], capsys)
    assert rc == 0 and len(_entries(cache)) == 1, err  # every subcommand runs inside caching()
    spectrum.compute_spectrum(X * 3)  # and the library outside the CLI still writes nothing
    assert len(_entries(cache)) == 1


def test_the_cli_keeps_compiled_programs_unless_told_otherwise(tmp_path, monkeypatch):
    # a fresh process, as a user's: no JAX_COMPILATION_CACHE_DIR (the test run sets one for itself)
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")
           and k != "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"}
    script = (
        "import os, sys\n"
        "from daedyn.cli import main\n"
        "os.environ['DAEDYN_CACHE'] = sys.argv[1]\n"
        "assert main(['theory', '--quiet', '--no-cache']) == 0\n"  # compiles, keeps nothing
        "os.environ['DAEDYN_CACHE'] = sys.argv[2]\n"  # new shapes (the programs above are in memory)
        "assert main(['theory', '--quiet', '--lam', '1,2']) == 0\n")
    off, on = tmp_path / "off", tmp_path / "on"
    proc = subprocess.run([sys.executable, "-c", script, str(off), str(on)], env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert not (off / "xla").exists()
    kept = [p for p in (on / "xla").iterdir() if not p.name.endswith("-atime")]
    assert kept  # the closed form's programs, read back by the next run
    with monkeypatch.context() as mp:
        mp.setenv("DAEDYN_CACHE", str(on))
        info = _cache.info()
        assert info["programs"] == len(kept) and info["program_bytes"] > 0
        assert _cache.clear() == {"removed": 0, "removed_programs": len(kept)}
        assert list((on / "xla").iterdir()) == [] and _cache.info()["programs"] == 0


def test_a_compilation_cache_the_user_chose_is_kept(cache, capsys):
    # the test run chose one (tests/conftest.py), as a user may: the CLI leaves it, and writes no xla/
    chosen = jax.config.jax_compilation_cache_dir
    assert chosen and _cache.use_compilation_cache() == chosen
    rc, _, err = run_cli(["theory", "--quiet"], capsys)
    assert rc == 0 and jax.config.jax_compilation_cache_dir == chosen and not (cache / "xla").exists(), err
