"""The one progress mechanism (daedyn._progress, on tqdm): a compiling phase before the first chunk,
a rate and ETA that count only the chunks after it, "resumed at epoch X of Y", plain callbacks
unchanged, whole lines off a terminal and a live bar on one."""

import io

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from daedyn import _progress, noise
from daedyn import train as tr
from daedyn._progress import ProgressBar, progress_bar, starting, sweep_callback


class _Stream(io.StringIO):
    def __init__(self, tty):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


class _Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_compiling_then_an_honest_rate(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(_progress.time, "perf_counter", clock)
    out = _Stream(False)
    bar = progress_bar("epochs", desc="train", stream=out, min_interval=0.0)
    starting(bar, 0, 100)
    clock.t = 30.0  # compilation + the first 10 epochs: 30 s
    bar(10, 100)
    clock.t = 32.0  # then 10 epochs per second
    bar(30, 100)
    clock.t = 39.0
    bar(100, 100)
    lines = out.getvalue().splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("train:   0%") and lines[0].endswith("compiling]")
    assert "10/100 [00:00<?, ?epochs/s]" in lines[1]  # no rate is claimed from the compiling chunk
    # 20 epochs in the 2 s after the first chunk: 10 epochs/s, 70 left: ETA 7 s (not 30 s per 10 epochs)
    assert "30/100 [00:02<00:07, 10.00epochs/s]" in lines[2]
    assert "100/100 [00:09<00:00, 10.00epochs/s]" in lines[3]
    bar(100, 100)  # the end is drawn once
    assert len(out.getvalue().splitlines()) == 4


def test_lines_are_throttled_off_a_terminal(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(_progress.time, "perf_counter", clock)
    out = _Stream(False)
    bar = progress_bar("epochs", stream=out, min_interval=60.0)
    for done in (10, 20, 30, 40):  # the first line, nothing for a minute, then the end
        clock.t += 1.0
        bar(done, 40)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "10/40" in lines[0] and "40/40" in lines[1] and "\r" not in out.getvalue()


def test_live_bar_on_a_terminal():
    out = _Stream(True)
    bar = ProgressBar("chunks", desc="sweep", stream=out, min_interval=0.0)
    bar.start(0, 4)
    show = sweep_callback(bar)
    from types import SimpleNamespace
    for k in (1, 2, 4):
        show(SimpleNamespace(chunks_done=k, chunks_total=4, points_per_s=1234.0, final=False))
    text = out.getvalue()
    assert "\r" in text and "compiling" in text and "1,234 traj/s" in text
    assert "sweep: 100%" in text and "4/4" in text and text.endswith("\n")


def test_plain_callbacks_never_see_start():
    seen = []
    starting(seen.append, 0, 10)  # would append if called
    starting(None, 0, 10)
    assert seen == []


@pytest.fixture
def tiny():
    x = jr.uniform(jr.key(0), (32, 5)) * jnp.array([1.0, 0.8, 0.6, 0.4, 0.2])[None, :]
    return np.asarray(x)


def test_train_says_where_it_resumed(tiny, tmp_path):
    kw = dict(key=jr.key(9), alpha=0.3, noise=noise.gaussian(0.1), init_scale=0.1, hidden=3, epochs=40,
              save_every=10, chunk_records=2, checkpoint=tmp_path / "run.npz")

    def stop(done, total):
        raise KeyboardInterrupt  # after the first chunk was checkpointed

    with pytest.raises(KeyboardInterrupt):
        tr.train(tiny, progress=stop, **kw)
    out = _Stream(False)
    tr.train(tiny, progress=progress_bar("epochs", stream=out, min_interval=0.0), **kw)
    lines = out.getvalue().splitlines()
    assert "20/40" in lines[0] and "resumed at epoch 20 of 40, compiling" in lines[0]
    assert "40/40" in lines[-1] and len(lines) == 2
    out = _Stream(False)  # a finished checkpoint: resumed at the end, finished at once
    tr.train(tiny, progress=progress_bar("epochs", stream=out, min_interval=0.0), **kw)
    lines = out.getvalue().splitlines()
    assert "resumed at epoch 40 of 40" in lines[0] and "40/40" in lines[-1]


def test_tune_reports_each_evaluation():
    import optax

    from daedyn import tune

    calls = []
    f = lambda p: (jnp.log(p["eps"]) - 1.0) ** 2
    r = tune.tune(f, {"eps": 1.0}, optimizer=optax.sgd(0.4), max_steps=50,
                  progress=lambda d, t: calls.append((d, t)))
    n = len(r.history.objective)
    assert calls == [(k, 50) for k in range(1, n + 1)] + [(n, n)]
