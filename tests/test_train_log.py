"""The logging hook: train(log=fn) calls fn once per recorded point, in order, with the values the
result holds (nothing recomputed); resumed runs log only the new records; tune(log=) per iterate."""

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from daedyn import noise, train, tune


@pytest.fixture(scope="module")
def tiny():
    return np.asarray(jr.uniform(jr.key(0), (32, 5)) * jnp.array([1.0, 0.8, 0.6, 0.4, 0.2])[None, :])


# The settings (and chunking) of tests/test_progress.py's resume test: the compiled pieces are shared.
KW = dict(key=jr.key(9), alpha=0.3, noise=noise.gaussian(0.1), init_scale=0.1, hidden=3, epochs=40,
          save_every=10, chunk_records=2)


def test_one_record_per_saved_point_equal_to_the_result(tiny):
    seen = []
    r = train.train(tiny, log=seen.append, **KW)
    assert [s["epoch"] for s in seen] == [0, 10, 20, 30, 40] == np.asarray(r.t).tolist()
    assert set(seen[0]) == {"epoch", "mapping", "singular_values", "weight_norm", "train_loss"}
    for name in ("mapping", "singular_values", "weight_norm", "train_loss"):
        # the same arrays, copied: exact equality
        np.testing.assert_array_equal(np.stack([s[name] for s in seen]), np.asarray(getattr(r, name)))
    assert isinstance(seen[-1]["train_loss"], float) and seen[-1]["mapping"].shape == (5,)


def test_resumed_run_logs_only_new_records(tiny, tmp_path):
    kw = dict(KW, checkpoint=tmp_path / "run.npz")
    first = []

    def stop(done, total):
        raise KeyboardInterrupt  # after the first chunk (records 10, 20) was saved and logged

    with pytest.raises(KeyboardInterrupt):
        train.train(tiny, log=first.append, progress=stop, **kw)
    rest = []
    r = train.train(tiny, log=rest.append, **kw)
    assert [s["epoch"] for s in first] == [0, 10, 20] and [s["epoch"] for s in rest] == [30, 40]
    np.testing.assert_array_equal(np.stack([s["mapping"] for s in first + rest]), np.asarray(r.mapping))


@pytest.mark.slow  # a second compilation (vmapped): ~10 s on 2 cores
def test_batched_records_have_the_batch_axes_first(tiny):
    seen = []
    train.train_batch(tiny, log=seen.append, **dict(KW, key=jr.split(jr.key(1), 2), epochs=20))
    assert [s["epoch"] for s in seen] == [0, 10, 20]
    assert seen[0]["mapping"].shape == (2, 5) and seen[0]["train_loss"].shape == (2,)


def test_tune_logs_every_iterate():
    import optax

    seen = []
    f = lambda p: (jnp.log(p["eps"]) - 1.0) ** 2
    r = tune.tune(f, {"eps": 1.0}, optimizer=optax.sgd(0.4), max_steps=4, log=seen.append)
    assert [s["step"] for s in seen] == list(range(len(r.history.objective)))
    np.testing.assert_array_equal([s["objective"] for s in seen], r.history.objective)
    np.testing.assert_allclose([s["eps"] for s in seen], r.history.params["eps"], rtol=0)
