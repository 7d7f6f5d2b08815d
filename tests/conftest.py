import os
import shutil
import tempfile

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def x64():
    """Run the test in float64; restored even when the test fails."""
    with jax.enable_x64(True):
        yield


@pytest.fixture(autouse=True)
def _no_leaked_x64():
    """An in-process ``daedyn ... --x64`` switches float64 on for the whole process, as a command-line
    program should; here that must not leak into the next test on the same worker (a float32 sweep
    would then compute in float64: seen in the slow suite)."""
    before = jax.config.jax_enable_x64
    yield
    if jax.config.jax_enable_x64 != before:
        jax.config.update("jax_enable_x64", before)


def pytest_collection_modifyitems(config, items):
    has_gpu = any(d.platform == "gpu" for d in jax.devices()) if items else False
    skip_gpu = pytest.mark.skip(reason="needs a GPU; none is visible to JAX")
    for item in items:
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(skip_gpu)


def pytest_configure(config):
    """The spectrum cache of every test run lives in a fresh temporary folder (removed at the end),
    never in the user's home; subprocesses inherit it through the environment."""
    if not os.environ.get("DAEDYN_CACHE"):
        folder = tempfile.mkdtemp(prefix="daedyn-test-cache-")
        os.environ["DAEDYN_CACHE"] = folder
        config._daedyn_cache = folder


def pytest_unconfigure(config):
    folder = getattr(config, "_daedyn_cache", None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop("DAEDYN_CACHE", None)
