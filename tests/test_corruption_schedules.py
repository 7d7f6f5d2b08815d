"""Corruption parameters as schedules (``masking(p=schedule)``, salt-and-pepper, covariances) and a
corruption combined with an eps schedule, in ``train.train``.

The references are independent NumPy loops: full-batch gradient descent on the data matrix with the
expected loss 1/(2N) [||X - X W^T||^2 + tr(W C_k W^T)] + gamma_k/2 sum_l ||W_l||^2 at epoch k
(marginalised), or with the inputs of epoch k corrupted by replayed masks (sampled).
"""

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from daedyn import noise, schedules, train

N, D, H = 30, 6, 3


def _x():
    rng = np.random.default_rng(0)
    return rng.uniform(0.0, 1.0, (N, D)) * np.linspace(1.0, 0.3, D)


def _piece(boundaries, values, k):
    """The value of a piecewise-constant schedule at epoch k (NumPy: values[i] on [b_{i-1}, b_i))."""
    return values[int(np.searchsorted(boundaries, k, side="right"))]


def _gd(x, w1, w2, alpha, epochs, term, gamma=lambda k: 0.0, inputs=None):
    """NumPy full-batch GD on the data matrix. ``term(k)``: the (D, D) corruption term C_k of the
    expected loss; ``inputs(k)``: the corrupted inputs X~_k of a sampled epoch (then C_k is 0)."""
    w1, w2 = np.array(w1, np.float64), np.array(w2, np.float64)
    n = x.shape[0]
    for k in range(epochs):
        xt = x if inputs is None else inputs(k)
        w = w2 @ w1
        err = x - xt @ w.T
        g = -(err.T @ xt) / n  # d/dW of ||X - X~ W^T||^2 / (2N)
        if inputs is None:
            g = g + w @ term(k) / n  # d/dW of tr(W C W^T) / (2N)
        g1, g2 = w2.T @ g + gamma(k) * w1, g @ w1.T + gamma(k) * w2
        w1, w2 = w1 - alpha * g1, w2 - alpha * g2
    return w1, w2


def _masking_term(x, p, eps=0.0):
    """C = p / (1 - p) diag(X^T X) + eps I (inverted dropout plus isotropic noise of level eps)."""
    return np.diag(p / (1 - p) * np.sum(x * x, axis=0)) + eps * np.eye(x.shape[1])


def test_marginalised_masking_rate_eps_and_gamma_schedules_match_numpy_gd(x64):
    x = _x()
    pb, pv = [20.0, 40.0], [0.1, 0.4, 0.25]
    eb, ev = [30.0], [0.5, 2.0]
    gb, gv = [25.0], [0.0, 0.02]
    alpha, epochs = 0.5, 60
    r = train.train(x, key=jr.key(0), alpha=alpha, hidden=H, epochs=epochs, save_every=epochs,
                    init_scale=0.1, marginalised=True, observables=("weight_norm",),
                    noise=noise.masking(schedules.piecewise_constant(pb, pv)),
                    eps=schedules.piecewise_constant(eb, ev), gamma=schedules.piecewise_constant(gb, gv))
    term = lambda k: _masking_term(x, _piece(pb, pv, k), _piece(eb, ev, k))
    w1, w2 = _gd(x, r.init_params["w1"], r.init_params["w2"], alpha, epochs, term,
                 gamma=lambda k: _piece(gb, gv, k))
    # The same GD recursion in float64 (the run on the eigenbasis path, the oracle on X): rounding
    # only, measured 4.4e-16 over 60 steps; 1e-10 leaves room for other BLAS orderings.
    np.testing.assert_allclose(r.params["w1"], w1, rtol=0, atol=1e-10)
    np.testing.assert_allclose(r.params["w2"], w2, rtol=0, atol=1e-10)
    # ... and at that tolerance every piece matters: the constant first rate and eps are 1e-2 away
    c1, _ = _gd(x, r.init_params["w1"], r.init_params["w2"], alpha, epochs,
                lambda k: _masking_term(x, pv[0], ev[0]), gamma=lambda k: _piece(gb, gv, k))
    assert np.max(np.abs(c1 - w1)) > 1e-3
    assert isinstance(r.eps, schedules.PiecewiseConstant)  # the result reports the eps schedule


@pytest.mark.parametrize("case", ["masking_linear_sigma",
                                  pytest.param("variances_data", marks=pytest.mark.slow)])  # ~4 s each
def test_marginalised_continuous_rate_and_variance_schedules_match_numpy_gd(case, x64):
    x = _x()
    alpha, epochs = 0.5, 40
    if case == "masking_linear_sigma":  # a ramp of the rate, input-basis (D,) term on the Sigma path
        corruption, path = noise.masking(schedules.linear(0.05, 0.5, 30.0)), "sigma"
        term = lambda k: _masking_term(x, 0.05 + 0.45 * min(k / 30.0, 1.0))
    else:  # per-component Gaussian variances v_k: C_k = N diag(v_k), on the data path
        vs = np.array([[0.01, 0.02, 0.0, 0.05, 0.01, 0.03], [0.08, 0.0, 0.04, 0.01, 0.02, 0.1]])
        corruption = noise.gaussian_covariance(schedules.piecewise_constant([15.0], vs))
        path, term = "data", lambda k: N * np.diag(_piece([15.0], vs, k))
    r = train.train(x, key=jr.key(1), alpha=alpha, hidden=H, epochs=epochs, save_every=epochs,
                    init_scale=0.1, marginalised=True, path=path, noise=corruption,
                    observables=("weight_norm",))
    w1, w2 = _gd(x, r.init_params["w1"], r.init_params["w2"], alpha, epochs, term)
    # float64 rounding only (measured <= 4.4e-16); see the test above for the tolerance.
    np.testing.assert_allclose(r.params["w1"], w1, rtol=0, atol=1e-10)
    np.testing.assert_allclose(r.params["w2"], w2, rtol=0, atol=1e-10)


@pytest.mark.slow  # ~11 CPU-s; sampling at each epoch's value is tested by the corrupt-at-an-epoch test
def test_sampled_masking_schedule_with_eps_schedule_replays_in_numpy(x64):
    """Epoch k drops with p(k) and adds Gaussian noise of variance eps(k) / N. The masks are
    replayed from the run's documented keys (the run key is split(key)[1]; epoch k's key is
    fold_in(run key, k); masks are bernoulli(key_k, 1 - p(k)) over (N, D); the additive noise is
    normal(fold_in(key_k, 0xADD))) and the whole GD run is redone in NumPy."""
    from daedyn.train._corruption import _ADDITIVE

    x = _x()
    pb, pv = [15.0], [0.1, 0.6]
    eb, ev = [25.0], [0.0, 3.0]
    alpha, epochs, key = 0.3, 40, jr.key(3)
    r = train.train(x, key=key, alpha=alpha, hidden=H, epochs=epochs, save_every=epochs, init_scale=0.1,
                    noise=noise.masking(schedules.piecewise_constant(pb, pv)),
                    eps=schedules.piecewise_constant(eb, ev), observables=("weight_norm",))
    k_run = jr.split(key)[1]
    masks, inputs = [], []
    for k in range(epochs):  # eager draws: each random function compiles once (a vmap compiles slower)
        p, eps, kk = _piece(pb, pv, k), _piece(eb, ev, k), jr.fold_in(k_run, k)
        m = np.asarray(jr.bernoulli(kk, jnp.asarray(1.0 - p, jnp.float64), (N, D)))
        z = np.asarray(jr.normal(jr.fold_in(kk, _ADDITIVE), (N, D), jnp.float64))
        masks.append(m)
        inputs.append(np.where(m, x / (1 - p), 0.0) + np.sqrt(eps / N) * z)
    w1, w2 = _gd(x, r.init_params["w1"], r.init_params["w2"], alpha, epochs, None,
                 inputs=lambda k: inputs[k])
    # the same masks and noise, the same recursion: float64 rounding (measured 1.7e-16)
    np.testing.assert_allclose(r.params["w1"], w1, rtol=0, atol=1e-10)
    np.testing.assert_allclose(r.params["w2"], w2, rtol=0, atol=1e-10)
    # so the run dropped what these masks drop: per piece, the drop fraction is p within 5 binomial
    # standard errors (sqrt(p (1 - p) / entries): 0.0058 and 0.0073 here; false failure < 1e-6)
    dropped = 1.0 - np.array([m.mean() for m in masks])
    for lo, hi, p in ((0, 15, 0.1), (15, 40, 0.6)):
        entries = (hi - lo) * N * D
        assert abs(dropped[lo:hi].mean() - p) <= 5 * np.sqrt(p * (1 - p) / entries), (lo, p)


def test_scheduled_corruptions_at_an_epoch_corrupt_with_that_epochs_value():
    """``at(k)`` takes the piece in force at k (a boundary belongs to the next piece): drop / hit
    fractions of 12000 entries within 5 binomial standard errors (<= 0.023 here) of p(k)."""
    pb, pv = [10.0, 20.0], [0.05, 0.5, 0.3]
    sched = schedules.piecewise_constant(pb, pv)
    half = jnp.full((4000, 3), 0.5)
    for k in (9.0, 10.0, 20.0):
        p = _piece(pb, pv, k)
        tol = 5 * np.sqrt(p * (1 - p) / half.size)
        dropped = jnp.mean(noise.masking(sched).at(k).corrupt(jr.key(0), half) == 0)
        hit = jnp.mean(noise.salt_and_pepper(sched).at(k).corrupt(jr.key(0), half) != 0.5)
        assert abs(float(dropped) - p) <= tol and abs(float(hit) - p) <= tol, (k, p, dropped, hit)
    var = schedules.piecewise_constant([10.0], jnp.array([[0.01, 0.04, 0.09], [0.25, 1.0, 0.0]]))
    z = noise.gaussian_covariance(var).at(12.0).corrupt(jr.key(0), jnp.zeros((20000, 3)))
    # sample variances of 20000 Gaussian draws: relative standard error sqrt(2 / 20000) = 1%
    np.testing.assert_allclose(np.var(np.asarray(z), axis=0), [0.25, 1.0, 0.0], rtol=0.05, atol=1e-12)


def test_one_compilation_serves_every_schedule_value():
    x = jnp.asarray(_x(), jnp.float32)
    data = train.prepare_data(x)
    run = jax.jit(train.train_fn(epochs=20, marginalised=True, observables=("weight_norm",)))
    p0 = {"w1": jnp.full((H, D), 0.1), "w2": jnp.full((D, H), 0.1)}
    norms = []
    for values in ([0.1, 0.5], [0.3, 0.2]):
        mk = noise.masking(schedules.piecewise_constant([10.0], values))
        _, rec = run(p0, data, train.Hyper(alpha=0.5, corruption=mk), jr.key(0))
        norms.append(float(rec["weight_norm"][-1]))
    assert run._cache_size() == 1  # the rates are traced leaves of Hyper.corruption
    assert norms[0] != norms[1]


def _refused(corruption, **kw):
    return lambda: train.train(_x(), key=jr.key(0), alpha=0.1, hidden=2, epochs=10, save_every=10,
                               noise=corruption, **kw)


_PC = schedules.piecewise_constant


@pytest.mark.parametrize(("build", "match"), [
    (lambda: noise.masking(_PC([5.0], [0.1, 1.0])), r"p schedule values must lie in \[0, 1\); got 1 of 2"),
    (lambda: noise.masking(schedules.linear(0.1, 1.5, 10.0)), r"p schedule values must lie in \[0, 1\)"),
    (lambda: noise.salt_and_pepper(_PC([5.0], [0.1, 1.2])), r"p schedule values must lie in \[0, 1\]"),
    (lambda: noise.gaussian_covariance(_PC([5.0], np.stack([np.eye(2), [[1.0, 2.0], [2.0, 1.0]]]))),
     "cov schedule values must be positive semi-definite"),
    # a user function's values are known on the run's epochs only: refused by train before it runs
    (_refused(noise.masking(schedules.function(lambda t, a: a * t, 0.2))),
     r"p schedule values must lie in \[0, 1\); got 5 of 10"),
    (_refused(noise.salt_and_pepper(_PC([5.0], [0.1, 0.3])), marginalised=True),
     "'salt_and_pepper' cannot be marginalised"),
    (_refused(noise.gaussian(0.1), eps=_PC([5.0], [0.1, 0.3])), "noise must be None"),
    (lambda: noise.masking(_PC([5.0], [0.1, 0.3])).corrupt(jr.key(0), jnp.ones(3)),
     r"use corruption.at\(t\)"),
])
def test_out_of_range_and_impossible_schedules_are_refused_naming_the_parameter(build, match):
    with pytest.raises(ValueError, match=match):
        build()
