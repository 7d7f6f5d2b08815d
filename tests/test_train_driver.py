"""Tests of the driver (daedyn.train._driver, _config, _data): batching, minibatches, progress,
resume, checkpoints, the stability warning, the shared configuration and bad input."""

import warnings

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from daedyn import dynamics, noise
from daedyn import train as tr


@pytest.fixture(scope="module")
def tiny():
    """Small synthetic data (N = 32, D = 5) with a spread-out spectrum."""
    x = jr.uniform(jr.key(0), (32, 5)) * jnp.array([1.0, 0.8, 0.6, 0.4, 0.2])[None, :]
    return np.asarray(x)


# One static run shape shared by several tests (alpha, gamma, s^2 and init_scale are traced), so they
# reuse one compilation.
S1 = dict(hidden=3, epochs=40, save_every=20)


# --------------------------------------------------------------------------------------------------
# Batching, minibatches, progress and resume
# --------------------------------------------------------------------------------------------------

def test_batch_equals_separate_runs(tiny):
    """vmap over seeds and hyperparameters (gamma, sampled noise variance) equals separate runs."""
    s2, gamma = jnp.array([0.1, 0.3]), jnp.array([0.0, 0.05])
    rb = tr.train_batch(tiny, key=jr.key(6), alpha=0.3, noise=noise.gaussian(s2), gamma=gamma,
                        init_scale=0.1, **S1)
    keys = jr.split(jr.key(6), 2)
    for i in range(2):
        ri = tr.train(tiny, key=keys[i], alpha=0.3, noise=noise.gaussian(s2[i]), gamma=gamma[i],
                      init_scale=0.1, **S1)
        for f in ("mapping", "singular_values", "weight_norm", "train_loss"):
            # vmap batches the same float32 operations; measured differences ~1e-7 relative.
            np.testing.assert_allclose(getattr(rb, f)[i], getattr(ri, f), rtol=1e-5, atol=1e-6, err_msg=f)
        np.testing.assert_allclose(rb.eps[i], ri.eps, rtol=1e-6)
        np.testing.assert_array_equal(rb.init_params["w1"][i], ri.init_params["w1"])  # same seed
    assert rb.mapping.shape == (2, 3, 5)
    assert not np.allclose(rb.init_params["w1"][0], rb.init_params["w1"][1])  # different seeds


@pytest.mark.slow
def test_batch_grid_of_seeds_and_alpha(tiny):
    """A (seeds x alpha) grid: keys of shape S and alpha broadcasting to S."""
    keys = jr.split(jr.key(7), (2, 2))
    r = tr.train_batch(tiny, hidden=2, key=keys, epochs=20, alpha=jnp.array([0.1, 0.4]), save_every=10,
                       noise=noise.gaussian(0.1), marginalised=True, init_scale=0.1)
    assert r.mapping.shape == (2, 2, 3, 5) and r.tau.shape == (2, 2)
    np.testing.assert_allclose(r.tau, np.broadcast_to(32 / np.array([0.1, 0.4]), (2, 2)), rtol=1e-6)
    one = tr.train(tiny, hidden=2, key=keys[1, 0], epochs=20, alpha=0.1, save_every=10,
                   noise=noise.gaussian(0.1), marginalised=True, init_scale=0.1)
    np.testing.assert_allclose(r.mapping[1, 0], one.mapping, rtol=1e-5, atol=1e-7)  # float32 vmap


def test_minibatches(tiny):
    kw = dict(key=jr.key(9), alpha=0.3, noise=noise.gaussian(0.1), init_scale=0.1, **S1)
    full = tr.train(tiny, **kw)
    # The epoch's noise does not depend on the batch size, so one shuffled minibatch of all N samples
    # is the full-batch step up to summation order (float32, measured 1e-7).
    same = tr.train(tiny, batch_size=32, **kw)
    np.testing.assert_allclose(same.mapping, full.mapping, rtol=1e-4, atol=1e-6)
    mini = tr.train(tiny, batch_size=8, **kw)
    assert np.all(np.isfinite(np.asarray(mini.mapping)))
    assert not np.allclose(mini.mapping[-1], full.mapping[-1], atol=1e-3)  # 4 steps per epoch
    assert float(mini.train_loss[-1]) < float(full.train_loss[-1])  # 4x the steps: further along


@pytest.mark.slow
def test_resume_and_progress(tiny):
    kw = dict(key=jr.key(9), alpha=0.3, noise=noise.gaussian(0.1), init_scale=0.1, **S1)
    full = tr.train(tiny, **kw)
    calls = []
    chunked = tr.train(tiny, chunk_records=1, progress=lambda d, t: calls.append((d, t)), **kw)
    assert calls == [(20, 40), (40, 40)]
    np.testing.assert_allclose(chunked.mapping, full.mapping, rtol=1e-6, atol=1e-8)  # same computation
    # Resuming from the state at epoch 20 continues the same noise sequence.
    first = tr.train(tiny, chunk_records=1, **{**kw, "epochs": 20})
    rest = tr.train(tiny, params=first.params, start_epoch=20, chunk_records=1, **{**kw, "epochs": 20})
    np.testing.assert_array_equal(rest.t, [20, 40])
    np.testing.assert_allclose(rest.mapping[-1], full.mapping[-1], rtol=1e-5, atol=1e-7)

def test_stability_warning(tiny):
    """The shared check (daedyn._linear, supplement D's Hessian) on the learned directions: alpha *
    2 lam_0 / N >= 2 warns, a stable rate does not."""
    lam0 = float(np.linalg.eigvalsh(tiny.T @ tiny)[-1])
    with pytest.warns(dynamics.UnstableStepWarning, match=r"lam=.*alpha="):
        tr.train(tiny, key=jr.key(0), alpha=1.5 * 32 / lam0, **S1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = tr.train(tiny, key=jr.key(0), alpha=0.5 * 32 / lam0, **S1)
    assert np.all(np.isfinite(np.asarray(r.mapping)))


def test_stability_check_uses_gamma_eps_and_the_mse_units(tiny):
    """Weight decay moves the edge (h_max = max(2 lam / N - 2 gamma, 2 gamma) at the fixed point): the
    old check (alpha lam_0 / N >= 1, no gamma) warned here, the shared one does not. With
    loss_scale="mse" the check runs in the paper's units: alpha -> 2 alpha / D, gamma -> gamma D / 2."""
    n, d = tiny.shape
    lam0 = float(np.linalg.eigvalsh(tiny.T @ tiny)[-1])
    alpha, gamma = 1.2 * n / lam0, 0.5 * lam0 / n  # alpha * h_max = 1.2 < 2
    with pytest.warns(dynamics.UnstableStepWarning):
        tr.train(tiny, key=jr.key(0), alpha=alpha, **S1)  # gamma = 0: alpha * 2 lam_0 / N = 2.4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tr.train(tiny, key=jr.key(0), alpha=alpha, gamma=gamma, **S1)
        # eps does not move the balanced edge: a large marginalised noise level is still stable.
        tr.train(tiny, key=jr.key(0), alpha=0.5 * n / lam0, noise=noise.gaussian(10.0), marginalised=True,
                 **S1)
        tr.train(tiny, key=jr.key(0), alpha=0.5 * n * d / (2 * lam0), loss_scale="mse", **S1)
    # mse: 2 alpha / D * 2 lam_0 / N = 3 >= 2; the message shows the paper's rate 2 alpha / D.
    edge = 1.5 * n * d / (2 * lam0)
    with pytest.warns(dynamics.UnstableStepWarning, match=f"alpha={2 * edge / d:g}"):
        tr.train(tiny, key=jr.key(0), alpha=edge, loss_scale="mse", **S1)
    # train_batch checks every run of the batch (the unstable one is named).
    with pytest.warns(dynamics.UnstableStepWarning, match="1 of 6 setting"):
        tr.train_batch(tiny, key=jr.key(0), alpha=jnp.array([0.5 * n / lam0, 1.5 * n / lam0]), **S1)


# --------------------------------------------------------------------------------------------------
# One configuration for train and train_batch
# --------------------------------------------------------------------------------------------------

def test_train_config_is_the_keyword_set_of_train_and_train_batch(tiny):
    cfg = tr.TrainConfig(**S1)
    kw = dict(key=jr.key(4), alpha=0.5, init_scale=0.1)
    by_kw = tr.train(tiny, **kw, **S1)
    by_cfg = tr.train(tiny, config=cfg, **kw)
    np.testing.assert_array_equal(by_cfg.mapping, by_kw.mapping)  # the same compiled run
    longer = tr.train(tiny, config=cfg, save_every=40, **kw)  # keywords override the config
    assert longer.t.tolist() == [0, 40]
    rb = tr.train_batch(tiny, config=cfg, key=jr.key(4), alpha=jnp.array([0.5, 0.3]), init_scale=0.1)
    assert rb.mapping.shape == (2, 3, 5)
    assert hash(cfg) == hash(tr.TrainConfig(**S1))  # frozen and hashable
    with pytest.raises(TypeError, match="unexpected keyword.*'hiden'"):
        tr.train(tiny, hiden=3, epochs=40, **kw)
    with pytest.raises(TypeError, match="needs hidden="):
        tr.train_batch(tiny, epochs=40, **kw)


# --------------------------------------------------------------------------------------------------
# Bad input: ValueError naming the parameter (and its range), raised before any compilation
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kw, match", [
    (dict(hidden=0), r"hidden must lie in \[1"),
    (dict(hidden=2.5), "hidden must be an integer"),
    (dict(alpha=-1.0), r"alpha must lie in \(0"),
    (dict(alpha=0.0), r"alpha must lie in \(0"),
    (dict(gamma=-0.1), r"gamma must lie in \[0"),
    (dict(epochs=-10), r"epochs must lie in \[0"),
    (dict(save_every=0), r"save_every must lie in \[1"),
    (dict(epochs=25), "multiple of save_every"),
    (dict(init_scale=-1.0), r"init_scale must lie in \[0"),
    (dict(activation="relu", marginalised=True, noise=noise.gaussian(0.1)), "linear network"),
    (dict(marginalised=True), "needs a noise model"),
    (dict(activation="nope"), "activation must be"),
    (dict(activation=3), "activation must be"),
    (dict(noise="uniform"), "noise must be"),
    (dict(path="eigen", noise=noise.gaussian(0.1)), "path='eigen'"),
    (dict(path="fast"), "path must be"),
    (dict(loss_scale="sum"), "loss_scale"),
    (dict(batch_size=64), "batch_size must be <= N"),
    (dict(batch_size=0), r"batch_size must lie in \[1"),
    (dict(observables=("mapping", "nope")), "observables"),
    (dict(optimizer="adam"), "optimizer must be"),
])
def test_bad_input(tiny, kw, match):
    args = dict(hidden=2, key=jr.key(0), epochs=20, alpha=0.1, save_every=10) | kw
    with pytest.raises(ValueError, match=match):
        tr.train(tiny, **args)


@pytest.mark.parametrize("make, match", [
    (lambda: noise.gaussian(-0.1), r"sigma2 must lie in \[0"),
    (lambda: noise.laplace(-1.0), r"b must lie in \[0"),
])
def test_bad_noise(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_data():
    with pytest.raises(ValueError, match=r"x must be a 2-D array \(N, D\)"):
        tr.train(np.zeros(5), hidden=2, key=jr.key(0), epochs=2, alpha=0.1, save_every=1)
    with pytest.raises(ValueError, match=r"x must be a 2-D array \(N, D\)"):
        tr.train(np.zeros((2, 3, 4)), hidden=2, key=jr.key(0), epochs=2, alpha=0.1, save_every=1)
    with pytest.raises(ValueError, match="x must lie in"):
        tr.train(np.full((4, 3), np.nan), hidden=2, key=jr.key(0), epochs=2, alpha=0.1, save_every=1)
    with pytest.raises(ValueError, match="x_heldout"):
        tr.train(np.ones((4, 3)), hidden=2, key=jr.key(0), epochs=2, alpha=0.1, save_every=1,
                 x_heldout=np.ones((2, 4)))
    with pytest.raises(ValueError, match="single PRNG key"):
        tr.train(np.ones((4, 3)), hidden=2, key=jr.split(jr.key(0), 2), epochs=2, alpha=0.1, save_every=1)
    with pytest.raises(ValueError, match="params must have"):
        tr.train(np.ones((4, 3)), hidden=2, key=jr.key(0), epochs=2, alpha=0.1, save_every=1,
                 params={"w1": np.zeros((3, 3)), "w2": np.zeros((3, 3))})
    with pytest.raises(ValueError, match="spectrum must have"):
        tr.train(np.ones((4, 3)), hidden=2, key=jr.key(0), epochs=2, alpha=0.1, save_every=1,
                 spectrum=tr.TrainData(None, np.ones(2), np.eye(2), 4))


# ------------------------------------------------------------------------------------------------
# Checkpoints: an interrupted run resumes where it stopped
# ------------------------------------------------------------------------------------------------

def test_checkpoint_resume_after_interrupt_equals_uninterrupted_run(tmp_path):
    x = jr.uniform(jr.key(0), (64, 6))
    kw = dict(hidden=3, key=jr.key(1), epochs=200, alpha=0.5, save_every=20,
              noise=noise.gaussian(0.05), init_scale=1e-2, chunk_records=2)  # 5 chunks
    ref = tr.train(x, **kw)
    ck = tmp_path / "run.npz"
    calls = []

    def interrupt_after_two(done, total):
        calls.append(done)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tr.train(x, **kw, checkpoint=ck, progress=interrupt_after_two)
    assert ck.exists() and calls == [40, 80]  # the second chunk was saved before progress ran
    seen = []
    res = tr.train(x, **kw, checkpoint=ck, progress=lambda d, t: seen.append(d))
    assert seen == [120, 160, 200]  # only the missing chunks ran
    # Same compiled chunks, same noise keys (fold_in by epoch): identical to the bit.
    for field in ("mapping", "singular_values", "weight_norm", "train_loss"):
        np.testing.assert_array_equal(getattr(res, field), getattr(ref, field))
    np.testing.assert_array_equal(res.params["w1"], ref.params["w1"])
    again = []
    tr.train(x, **kw, checkpoint=ck, progress=lambda d, t: again.append(d))
    assert again == []  # a finished checkpoint returns without training


def test_checkpoint_of_another_run_is_refused_and_kept(tmp_path):
    x = jr.uniform(jr.key(0), (32, 5))
    kw = dict(hidden=2, key=jr.key(1), epochs=40, alpha=0.5, save_every=20, init_scale=1e-2)
    ck = tmp_path / "run.npz"
    tr.train(x, **kw, checkpoint=ck)
    before = ck.read_bytes()
    with pytest.raises(ValueError, match="belongs to a different run"):
        tr.train(x, **{**kw, "alpha": 0.4}, checkpoint=ck)
    with pytest.raises(ValueError, match="belongs to a different run"):
        tr.train(x + 0.01, **kw, checkpoint=ck)
    assert ck.read_bytes() == before


def test_checkpoint_batched_run(tmp_path):
    x = jr.uniform(jr.key(0), (32, 5))
    kw = dict(hidden=2, key=jr.key(1), epochs=60, alpha=jnp.array([0.3, 0.5]), save_every=20,
              init_scale=1e-2, chunk_records=1)
    ref = tr.train_batch(x, **kw)
    ck = tmp_path / "batch.npz"

    def stop(done, total):
        if done == 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tr.train_batch(x, **kw, checkpoint=ck, progress=stop)
    res = tr.train_batch(x, **kw, checkpoint=ck)
    np.testing.assert_array_equal(res.mapping, ref.mapping)
    assert res.mapping.shape == ref.mapping.shape == (2, 4, 5)


_VMAPPED_RUN = """
import jax.numpy as jnp, jax.random as jr
from daedyn import noise, train
x = jr.uniform(jr.key(0), (200, 784))
r = train.train_batch(x, hidden=16, key=jr.key(0), epochs=20, alpha=0.01, save_every=5,
                      gamma=jnp.array([0.0, 0.5, 0.0]), noise=noise.gaussian(jnp.array([0.0, 0.0, 0.5])),
                      marginalised=True)
print(r.singular_values.shape, r.train_loss.shape)
"""


def test_vmapped_whole_run_with_singular_values_finishes():
    """Regression: with epoch 0 observed outside the record loop, this batched one-call run
    deadlocked in XLA's CPU runtime (jaxlib 0.10.2, concurrency-optimised scheduler: idle CPU,
    never returns). The loop now observes the start inside the loop. A subprocess turns a hang into
    a failure (the run itself takes a few seconds)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", _VMAPPED_RUN], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split("\n")[0] == "(3, 5, 16) (3, 5)"

