"""Deep linear networks trained from random starts against the per-direction theory
(theory.random_start_mapping, compare_with_theory's default w0="aligned" at depth >= 3): real
gradient-descent training is the independent reference (the model never sees the run's records).
The target of issue 27: every direction learned within the run within 5% in learning time."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from daedyn import data, spectrum, theory, train


def _learned_errors(measured_t, predicted_t):
    """Relative learning-time errors of the directions the network learned (a prediction that never
    learns one counts as an infinite error)."""
    learned = np.isfinite(measured_t)
    e = (predicted_t[learned] - measured_t[learned]) / measured_t[learned]
    return np.where(np.isfinite(e), np.abs(e), np.inf)


def test_alignment_model_tracks_training_on_synthetic_data():
    """D = 96 > K = 32 active directions: the truncation is exercised (float32, eigenbasis training)."""
    d, n_samples, depth = 96, 400, 3
    rng = np.random.default_rng(0)
    scales = 3.0 * np.arange(1, d + 1) ** -1.2  # a decaying spectrum, well separated at the top
    x = (rng.standard_normal((n_samples, d)) * scales).astype(np.float32)
    spec = spectrum.compute_spectrum(x)
    r = train.train(x, hidden=6, depth=depth, epochs=600, alpha=0.05, init_scale=0.1, save_every=5,
                    key=jax.random.key(1), spectrum=spec, precision="highest")
    lam = jnp.maximum(r.eigvals, 0)
    ws = tuple(jnp.asarray(w) for w in (r.init_params["w1"] @ spec.eigvecs, r.init_params["w2"],
                                        spec.eigvecs.T @ r.init_params["w3"]))
    model = theory.random_start_mapping(lam, ws, tau=r.tau, n=r.n, epochs=600, save_every=5, active=32)
    w_star = jnp.ones(32)
    t_meas = np.asarray(train.crossing_times(r.t, r.mapping[:, :32], 0.5 * w_star, fixed_point=w_star,
                                             depth=depth))
    t_model = np.asarray(train.crossing_times(r.t, model, 0.5 * w_star, fixed_point=w_star, depth=depth))
    err = _learned_errors(t_meas, t_model)
    assert err.size >= 3  # several directions learn within the run
    # measured worst 0.2% (float32 rounding of both runs and the truncation); target 5%
    assert np.max(err) < 0.05


@pytest.mark.slow  # real images, 1500 epochs of a depth-3 network and the depth-3 closed form (~1-3 min)
def test_compare_with_theory_tracks_a_deep_network_on_real_digits():
    ds = data.load("mnist5k", n=1000)  # stratified: all ten digits
    assert len(ds.subset.classes) == 10
    spec = spectrum.compute_spectrum(ds.x)
    r = train.train(ds, hidden=16, depth=3, epochs=1500, alpha=0.004, init_scale=0.03, save_every=10,
                    key=jax.random.key(0), spectrum=spec, precision="highest", chunk_records=50)
    c = train.compare_with_theory(r, eigvecs=spec.eigvecs)  # the default at depth 3: w0="aligned"
    err = _learned_errors(np.asarray(c.time_measured), np.asarray(c.time_discrete))
    assert err.size >= 3
    # measured worst 0.1% (K = 64 active directions of 784); the target is 5%
    assert np.max(err) < 0.05
    # the balanced start of before misses by far more (measured 30-130%): the check can fail
    bal = train.compare_with_theory(r, eigvecs=spec.eigvecs, w0="balanced")
    assert np.max(_learned_errors(np.asarray(bal.time_measured), np.asarray(bal.time_discrete))) > 0.1



def _spacing_data():
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((200, 12)) * 2.0 * np.arange(1, 13) ** -1.0).astype(np.float32)
    spec = spectrum.compute_spectrum(x)
    return x, spec, 0.45 * 200 / float(spec.eigvals[0])  # alpha lam_0 / N = 0.45: big steps


def test_recursion_time_does_not_depend_on_the_save_spacing():
    """The balanced recursion's crossing (compare_with_theory's discrete prediction) located epoch by
    epoch in the bracketing record interval: the same at save spacings 1 and 10 at depths 2 and 3,
    with alpha lam / N = 0.45 (direction 0 learned in ~14 epochs); the oracle is the crossing
    located on the recursion saved at every epoch."""
    from daedyn.train._compare import _recursion_times

    lam = jnp.array([450.0, 120.0, 60.0, 30.0])
    n, alpha, gamma = 200.0, 0.2, 0.02
    for depth, w0 in ((2, 1e-4), (3, 1e-2)):
        w_star = jnp.asarray(theory.fixed_point(lam, 0.0, gamma, n=n, depth=depth))
        t1 = jnp.arange(301.0)
        dense, oracle = _recursion_times(lam, 0.0, gamma, alpha=alpha, n=n, depth=depth, w0=jnp.full(4, w0),
                                         t=t1, every=1, target=0.5 * w_star, w_star=w_star)
        records, got = _recursion_times(lam, 0.0, gamma, alpha=alpha, n=n, depth=depth, w0=jnp.full(4, w0),
                                        t=t1[::10], every=10, target=0.5 * w_star, w_star=w_star)
        assert np.all(np.isfinite(np.asarray(oracle))) and 5 < float(oracle[0]) < 30
        np.testing.assert_allclose(records, dense[::10], rtol=1e-6)
        # measured: identical; on the records alone direction 0 was 8.3% (L = 2) and 0.8% (L = 3) early
        np.testing.assert_allclose(got, oracle, rtol=1e-4)
        on_records = train.crossing_times(t1[::10], records, 0.5 * w_star, fixed_point=w_star, depth=depth)
        assert abs(float(on_records[0]) - float(oracle[0])) > 5e-3 * float(oracle[0])  # the check can fail


@pytest.mark.slow  # two training runs and their comparisons: ~15 s of compilation on the 2-core CPU
def test_recursion_time_end_to_end_at_depth_2_is_spacing_free():
    """compare_with_theory at depth 2 on a run saved every epoch and every 10."""
    x, spec, alpha = _spacing_data()
    times = {}
    for every in (1, 10):
        r = train.train(x, hidden=4, epochs=200, alpha=alpha, gamma=0.02, init_scale=0.01, save_every=every,
                        key=jax.random.key(3), spectrum=spec, precision="highest")
        c = train.compare_with_theory(r, eigvecs=spec.eigvecs)
        times[every] = np.asarray(c.time_discrete)
    ok = np.isfinite(times[1])
    assert ok.sum() >= 3 and 10 < times[1][0] < 20
    # measured: equal to float32 rounding; located on the records every 10 it was 12% early
    # (12.08 against 13.75 epochs)
    np.testing.assert_allclose(times[10][ok], times[1][ok], rtol=1e-4)


@pytest.mark.slow  # two depth-3 runs and the alignment model's bisection: ~30 s of compilation on the CPU
def test_aligned_prediction_does_not_depend_on_the_save_spacing():
    """Depth 3: the matched start (model saved every epoch) and the recursion's crossing located epoch
    by epoch agree at save spacings 1 and 10 (before, records every 10 put the recursion's crossing
    up to 2.6 epochs off, non-monotonically in w0: Fashion-MNIST direction 0 was 5.6% off at depth 3
    under weight decay)."""
    x, spec, alpha = _spacing_data()
    times, measured = {}, {}
    for every in (1, 10):
        r = train.train(x, hidden=4, depth=3, epochs=300, alpha=alpha, gamma=0.02, init_scale=0.1,
                        save_every=every, key=jax.random.key(3), spectrum=spec, precision="highest")
        c = train.compare_with_theory(r, eigvecs=spec.eigvecs)
        times[every], measured[every] = np.asarray(c.time_discrete), np.asarray(c.time_measured)
    ok = np.isfinite(measured[1])
    assert ok.sum() >= 3 and 5 < measured[1][0] < 20  # direction 0 learned within two record intervals
    # measured: equal to float32 rounding
    np.testing.assert_allclose(times[10][ok], times[1][ok], rtol=1e-4)
    # and the prediction tracks training at every epoch (measured worst 0.0001%)
    assert np.max(_learned_errors(measured[1], times[1])) < 0.01
