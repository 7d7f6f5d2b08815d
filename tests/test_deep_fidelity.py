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
