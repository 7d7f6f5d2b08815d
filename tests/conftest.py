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
