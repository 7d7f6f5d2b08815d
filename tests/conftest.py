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


# set by pytest_configure (JAX registers the flag outside jax.config's attributes)
_REDUCED_OPTIMIZATION = [False]


@pytest.fixture(autouse=True)
def _optimized_where_asked(request):
    """A test marked ``optimized`` (a check at the edge of floating-point behaviour, e.g. a difference
    within rounding of 0) compiles with XLA's full optimisation, as users' programs do; the rest of
    the suite compiles with most of it off (pytest_configure). The flag is not part of JAX's
    in-memory cache key, so the caches are cleared on the way in and out (the programs compiled before
    come back from the persistent cache)."""
    if request.node.get_closest_marker("optimized") is None or not _REDUCED_OPTIMIZATION[0]:
        yield
        return
    jax.clear_caches()
    jax.config.update("jax_disable_most_optimizations", False)
    try:
        yield
    finally:
        jax.clear_caches()
        jax.config.update("jax_disable_most_optimizations", True)


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
    # One persistent XLA compilation cache for the run, shared by the xdist workers and the CLI
    # subprocesses (they inherit the environment): a program one worker compiled is read from disk by
    # the other. Every program is cached (the default keeps only those taking >= 1 s; most of the
    # suite's compilations are small). Measured on 171 tests of five compile-heavy files, -n 2 on the
    # 2-core CPU: 136 -> 120 CPU-s. Results are the same programs, so no test changes.
    # The suite compiles with XLA's optimisations mostly off (JAX's jax_disable_most_optimizations:
    # LLVM at -O0, no expensive passes), inherited by the CLI and notebook subprocesses: most of the
    # suite's time is compilation of small programs run once. Measured on 9 compile-heavy files (304
    # tests, the 2-core CPU shared with other jobs): 386 -> 301 CPU-s. Results differ from the optimised
    # programs by rounding only (a difference beyond rounding is a bug: it found one, an RK4 step end
    # an ulp past a jump). DAEDYN_TEST_OPTIMIZED=1 runs the suite on the fully optimised programs that
    # users and the benchmarks run (docs/testing.md).
    if os.environ.get("DAEDYN_TEST_OPTIMIZED", "").lower() not in ("1", "true", "yes"):
        os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "1"
        jax.config.update("jax_disable_most_optimizations", True)
        _REDUCED_OPTIMIZATION[0] = True
    if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        folder = tempfile.mkdtemp(prefix="daedyn-test-xla-")
        os.environ["JAX_COMPILATION_CACHE_DIR"] = folder
        os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
        jax.config.update("jax_compilation_cache_dir", folder)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        config._daedyn_xla_cache = folder


def pytest_unconfigure(config):
    folder = getattr(config, "_daedyn_cache", None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop("DAEDYN_CACHE", None)
    folder = getattr(config, "_daedyn_xla_cache", None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop("JAX_COMPILATION_CACHE_DIR", None)
        os.environ.pop("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", None)
