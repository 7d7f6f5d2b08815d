"""daedyn.sweep across processes: 4 forced host devices vs 1, SIGKILL and resume, peak memory.

Each test runs Python in a subprocess (XLA_FLAGS must be set before JAX initialises; SIGKILL
must hit a process other than pytest). The sweep functions live in a small module written to
tmp_path, so that the parent and the children run the *same* function (same spec hash).
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import daedyn.sweep as sweep
from daedyn.sweep._store import read_log

# the subprocesses import this checkout (not whatever daedyn an environment has installed elsewhere)
_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FUNCTIONS = '''
import jax, jax.numpy as jnp

def closed(lam, eps, w0, *, t, tau=1.0):
    fp = lam / (lam + eps)
    return {"w": fp / (1.0 + (fp / w0 - 1.0) * jnp.exp(-2.0 * (lam + eps) * fp * t / tau)),
            "fp": fp}

def gd(lam, eps, alpha, *, epochs):
    def step(w, _):
        w = w + alpha * (lam * (1.0 - w) - eps * w) * w
        return w, w
    return {"w": jax.lax.scan(step, jnp.asarray(0.01, lam.dtype), None, length=epochs)[1]}

def wide(a, b, *, t):
    return {"y": jnp.sin(a * t + b)}
'''


@pytest.fixture
def fns(tmp_path, monkeypatch):
    (tmp_path / "sweepfns.py").write_text(FUNCTIONS)
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def _python(code: str, tmp_path, *, devices: int = 1, check: bool = True, background: bool = False,
            **env_extra):
    path = os.pathsep.join([str(tmp_path), _REPO, os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONPATH=path,
               JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
               **env_extra)
    script = tmp_path / f"script_{abs(hash(code))}.py"
    script.write_text(textwrap.dedent(code))
    args = [sys.executable, str(script)]
    if background:
        return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    res = subprocess.run(args, env=env, capture_output=True, text=True, timeout=240)
    if check and res.returncode != 0:
        raise AssertionError(f"subprocess failed ({res.returncode}):\n{res.stderr[-3000:]}")
    return res


CLOSED_SPEC = dict(function="sweepfns:closed",
                   axes={"lam": {"geomspace": [0.1, 10.0, 37]}, "eps": {"linspace": [0.0, 3.0, 11]},
                         "w0": [1e-3, 0.1, 0.5]},
                   constants={"t": [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0]}, dims={"w": ["t"]}, chunk_size=90)
GD_SPEC = dict(function="sweepfns:gd",
               axes={"lam": {"geomspace": [0.1, 10.0, 37]}, "eps": {"linspace": [0.0, 3.0, 11]},
                     "alpha": [0.1, 0.5, 1.9]},
               constants={"epochs": 40}, dims={"w": ["epoch"]}, chunk_size=90)


def test_sharded_over_4_devices_equals_single_device(fns):
    code = f"""
    import json, jax, daedyn.sweep as sweep
    assert len(jax.devices()) == 4
    out = {{}}
    for name, spec in (("closed", {CLOSED_SPEC!r}), ("gd", {GD_SPEC!r})):
        s = sweep.run(spec, path=r"{fns}/" + name + "4.zarr", allow_import=["sweepfns"])
        out[name] = [s.plan.n_devices, s.plan.batch_size, s.n_chunks]
    print(json.dumps(out))
    """
    res = _python(code, fns, devices=4)
    info = json.loads(res.stdout.strip().splitlines()[-1])
    # chunk_size 90: 11 eps x 3 = 33 points fit, 3 x 33 do not, so blocks are 2 lam x 11 x 3 = 66
    # points (37 lam values in 19 blocks), padded to 68 for 4 devices
    assert info["closed"] == [4, 68, 19] and info["gd"] == [4, 68, 19]
    for name, spec in (("closed", CLOSED_SPEC), ("gd", GD_SPEC)):
        single = sweep.run(spec, path=fns / f"{name}1.zarr", allow_import=["sweepfns"])  # one CPU device
        assert single.plan.n_devices == 1 and single.plan.batch_size == 66
        a, b = sweep.open_results(fns / f"{name}4.zarr"), sweep.open_results(fns / f"{name}1.zarr")
        assert a.attrs["sweep_spec_hash"] == b.attrs["sweep_spec_hash"]
        np.testing.assert_array_equal(a.status.values, b.status.values)
        for v in b.data_vars:
            # one device vmaps the function per axis over a block, several devices per point over the
            # flat batch (daedyn.sweep._run._chunk_fns): the same float32 operations, which XLA fuses
            # and contracts differently; measured 2.5e-7 relative at most (2 ulp)
            np.testing.assert_allclose(a[v].values, b[v].values, rtol=1e-6, atol=0)
        assert (b.status.values == 0).sum() > 0


KILL_SCRIPT = """
import os, signal, sys, daedyn.sweep as sweep
spec = {spec!r}
k = int(sys.argv[1]) if len(sys.argv) > 1 else 0
def die(p):
    if k and p.chunks_computed == k and not p.final:
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup at all: as hard as a crash
sweep.run(spec, path=r"{path}", progress=die, allow_import=["sweepfns"])
print("finished")
"""


def test_sigkill_then_resume_matches_uninterrupted(fns):
    path = fns / "killed.zarr"
    code = KILL_SCRIPT.format(spec=GD_SPEC, path=path)
    script = fns / "kill.py"
    script.write_text(code)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(fns), _REPO]), JAX_PLATFORMS="cpu")
    first = subprocess.run([sys.executable, str(script), "5"], env=env, capture_output=True, text=True,
                           timeout=240)
    assert first.returncode == -signal.SIGKILL, first.stderr[-2000:]
    log1 = read_log(path)
    # killed when the 5th chunk was reported; the writer thread runs behind a bounded queue, so a
    # chunk or two more may have been written and recorded before the kill landed (seen: 6)
    n1 = len(log1)
    assert [r["chunk"] for r in log1] == list(range(n1)) and 5 <= n1 <= 8
    part = sweep.open_results(path)
    assert part.attrs["sweep_chunks_done"] == n1 and not part.attrs["sweep_complete"]
    second = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True,
                            timeout=240)
    assert second.returncode == 0 and "finished" in second.stdout, second.stderr[-2000:]
    log = read_log(path)
    chunks = [r["chunk"] for r in log]
    assert sorted(chunks) == list(range(19))  # every chunk recorded exactly once over both runs
    pids = {r["chunk"]: r["pid"] for r in log}
    assert len({pids[c] for c in range(n1)}) == 1 and pids[0] != pids[n1]  # the first n1 by the killed run
    ref = sweep.run(GD_SPEC, path=fns / "ref.zarr", allow_import=["sweepfns"])
    a, b = sweep.open_results(path), sweep.open_results(fns / "ref.zarr")
    assert a.attrs["sweep_complete"] and ref.chunks_computed == 19
    for v in b.data_vars:
        np.testing.assert_array_equal(a[v].values, b[v].values)  # bitwise identical


@pytest.mark.slow
def test_sigkill_at_a_random_moment_then_resume(fns):
    """Killed from outside while it may be writing: unrecorded chunks are simply recomputed."""
    spec = dict(CLOSED_SPEC, chunk_size=12)  # 37 x 3 blocks of 1 x 4 x 3 points: many writes
    path = fns / "random.zarr"
    code = KILL_SCRIPT.format(spec=spec, path=path)
    proc = _python(code, fns, background=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(read_log(path)) < 20 and proc.poll() is None:
        time.sleep(0.005)
    proc.kill()
    proc.communicate()
    n_before = len(read_log(path))
    assert 20 <= n_before < 111  # killed mid-sweep (the poll loop is far faster than the sweep)
    res = _python(code, fns)
    assert "finished" in res.stdout
    chunks = [r["chunk"] for r in read_log(path)]
    assert sorted(chunks) == list(range(111))
    sweep.run(spec, path=fns / "ref.zarr", allow_import=["sweepfns"])
    a, b = sweep.open_results(path), sweep.open_results(fns / "ref.zarr")
    for v in b.data_vars:
        np.testing.assert_array_equal(a[v].values, b[v].values)


def test_results_larger_than_memory_limit_stay_bounded(fns):
    """48 MB of results under a 4 MB limit: the process never holds more than the limit.

    Two measurements in a fresh process, both from the end of the first chunk (compilation and
    imports allocate memory that is not results): (1) tracemalloc's peak minus its level then,
    which counts every buffer NumPy and Python allocate (host copies, zarr's encoded chunks);
    (2) the growth of the resident set size (/proc/self/statm) up to the largest value seen after any
    chunk, which also counts XLA's own buffers. For (2) glibc is told to serve every block over
    64 kB by mmap (MALLOC_MMAP_THRESHOLD_), so a freed result buffer leaves the RSS at once
    instead of lingering in the heap (with glibc's adaptive threshold the RSS wandered by 3-13
    MB whatever the limit). Holding all results (or a tenth of them) would show up in both.
    """
    if not os.path.exists("/proc/self/statm"):
        pytest.skip("RSS is read from /proc (Linux)")
    limit = 4_000_000
    code = f"""
    import json, os, tracemalloc, numpy as np, daedyn.sweep as sweep
    spec = dict(function="sweepfns:wide", axes={{"a": {{"linspace": [0.1, 1.0, 80]}},
                "b": {{"linspace": [0.0, 1.0, 60]}}}}, constants={{"t": np.linspace(0, 10, 2500)}},
                dims={{"y": ["t"]}}, max_memory={limit})
    rss, traced = [], []
    def measure(p):
        with open("/proc/self/statm") as f:  # resident pages, second field
            rss.append(int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE"))
        if p.chunks_computed == 1:  # after compilation: from here on only chunks come and go
            traced.append(tracemalloc.get_traced_memory()[0])
            tracemalloc.reset_peak()
    tracemalloc.start()
    s = sweep.run(spec, path=r"{fns}/big.zarr", progress=measure, allow_import=["sweepfns"])
    peak = tracemalloc.get_traced_memory()[1]
    print(json.dumps(dict(traced_growth=peak - traced[0], rss_growth=max(rss) - rss[0],
                          total=s.plan.total_bytes, n_chunks=s.n_chunks, estimate=s.plan.memory_estimate)))
    """
    info = json.loads(_python(code, fns, MALLOC_MMAP_THRESHOLD_="65536").stdout.strip().splitlines()[-1])
    assert info["total"] > 10 * limit and info["n_chunks"] >= 40  # really chunked
    assert info["estimate"] <= limit
    assert info["traced_growth"] <= limit, info  # Python/NumPy-side buffers
    # measured 0.3-0.8 MB here (3.4 MB with a 16 MB limit); holding the results would add 48 MB
    assert info["rss_growth"] <= limit, info
    ds = sweep.open_results(fns / "big.zarr")
    assert ds.attrs["sweep_complete"] and ds.y.shape == (80, 60, 2500)
    row = ds.y.isel(a=7, b=3).values
    a, b = ds.a.values[7], ds.b.values[3]
    want = np.sin(np.float32(a) * np.linspace(0, 10, 2500).astype(np.float32) + np.float32(b))
    # float32 sin of the same float32 products: rtol 2e-6 / atol 1e-6 cover a few ulps near zeros
    np.testing.assert_allclose(row, want, rtol=2e-6, atol=1e-6)


@pytest.mark.slow
def test_two_processes_with_jax_distributed(fns):
    """Two CPU processes joined by jax.distributed share the chunks and write one store."""
    import socket

    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    path = fns / "multi.zarr"
    code = f"""
    import json, sys, jax
    jax.distributed.initialize(coordinator_address="localhost:{port}", num_processes=2,
                               process_id=int(sys.argv[1]))
    import daedyn.sweep as sweep
    s = sweep.run({GD_SPEC!r}, path=r"{path}", allow_import=["sweepfns"])
    print(json.dumps(dict(process=jax.process_index(), computed=s.chunks_computed)))
    """
    script = fns / "multi.py"
    script.write_text(textwrap.dedent(code))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(fns), _REPO]), JAX_PLATFORMS="cpu")
    procs = [subprocess.Popen([sys.executable, str(script), str(i)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for i in (0, 1)]
    outs = [p.communicate(timeout=180) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    info = [json.loads(o[0].strip().splitlines()[-1]) for o in outs]
    assert sorted(i["computed"] for i in info) == [9, 10]  # 19 chunks dealt round-robin
    log = read_log(path)
    assert sorted(r["chunk"] for r in log) == list(range(19))
    assert {r["chunk"] % 2 for r in log if r["process_index"] == 1} == {1}
    sweep.run(GD_SPEC, path=fns / "one.zarr", allow_import=["sweepfns"])
    a, b = sweep.open_results(path), sweep.open_results(fns / "one.zarr")
    assert a.attrs["sweep_complete"]
    for v in b.data_vars:
        np.testing.assert_array_equal(a[v].values, b[v].values)
