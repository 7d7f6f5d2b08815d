"""daedyn.train with deep networks (hidden as a list of widths, or depth=): every path against the
per-direction L-factor recursion from the decoupled start (synthetic and real images), the theory
comparison at depth, nonlinear and sampled-noise deep runs, bad input; on real data from small random
starts the per-direction theory is compared with a stated (and honestly loose) RMSE."""

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from daedyn import _linear, data, dynamics, models, noise, spectrum, train
from daedyn.dynamics._deep import balanced_factors


def _decoupled_params(spec, hidden, a, key):
    """The decoupled start (dynamics.orthogonal_init, one diagonal per factor: the rows of ``a``
    broadcast to (L, k)) rotated into the data's basis."""
    depth = len(hidden) + 1
    a = jnp.asarray(a)
    rows = [a] * depth if a.ndim < 2 else list(jnp.broadcast_to(a, (depth,) + a.shape[-1:]))
    ws = dynamics.orthogonal_init(spec.eigvals.shape[0], tuple(hidden), *rows, key=key)
    ws = _linear.from_eigenbasis(ws, spec.eigvecs, _linear.matmul_fn("highest"))
    return {f"w{l + 1}": w for l, w in enumerate(ws)}


@pytest.mark.parametrize("path", ["eigen", "sigma", "data"])
def test_deep_training_from_decoupled_start_is_the_recursion(x64, path):
    x = jr.normal(jr.key(0), (200, 6)) * jnp.linspace(2.0, 0.3, 6)[None, :]
    spec = spectrum.compute_spectrum(x)
    hidden, a = (5, 4), 0.3
    r = train.train(
        x,
        hidden=list(hidden),
        key=jr.key(1),
        alpha=0.05,
        gamma=1e-3,
        noise=noise.gaussian(0.1),
        marginalised=True,
        params=_decoupled_params(spec, hidden, a, jr.key(3)),
        epochs=400,
        save_every=100,
        spectrum=spec,
        path=path,
    )
    s = dynamics.scalar_gd(
        spec.eigvals[:4],
        200 * 0.1,
        factors=jnp.full((4, 3), a),
        alpha=0.05,
        gamma=1e-3,
        n=200,
        epochs=400,
        save_every=100,
    )
    # the same GD on the same loss, rotated: float64 rounding only (measured <= 4e-15)
    np.testing.assert_allclose(r.mapping[:, :4], np.asarray(s.w).T, atol=1e-12)
    np.testing.assert_allclose(r.mapping[:, 4:], 0.0, atol=1e-12)


@pytest.mark.slow  # real images through three compilations (~18 s); the default suite keeps the
# synthetic check of every path above
def test_deep_training_on_real_images_matches_theory_per_direction(x64):
    """300 real MNIST images (mnist5k), depth 3, widths (8, 8): the trained network's mapping equals the
    per-direction discrete theory from the decoupled start, and compare_with_theory says so."""
    x = jnp.asarray(np.asarray(data.load("mnist5k", n=300).x, np.float64))
    spec = spectrum.compute_spectrum(x)
    w0 = 1e-3
    a = balanced_factors(w0, 3)[0]
    r = train.train(
        x,
        hidden=8,
        depth=3,
        key=jr.key(0),
        alpha=0.004,
        noise=noise.gaussian(0.5),
        marginalised=True,
        params=_decoupled_params(spec, (8, 8), a, jr.key(1)),
        epochs=600,
        save_every=20,
        spectrum=spec,
    )
    c = train.compare_with_theory(r, eigvecs=spec.eigvecs, w0="balanced")
    np.testing.assert_allclose(c.w0[:8], w0, rtol=1e-10)  # |diag(V^T W V)| of the decoupled start
    # rounding only (measured <= 1e-13 over 600 steps of D = 784)
    assert float(jnp.max(c.rmse_discrete[:8])) < 1e-10
    assert float(jnp.max(jnp.abs(r.mapping[-1, :2] - c.fixed_point[:2]))) < 1e-3  # top two learned


def test_deep_nonlinear_and_sampled_noise_runs():
    x = jr.uniform(jr.key(0), (64, 5))
    r = train.train(
        x,
        hidden=[4, 3],
        key=jr.key(1),
        alpha=0.1,
        epochs=20,
        save_every=10,
        activation="tanh",
        noise=noise.gaussian(0.05),
    )
    assert sorted(r.params) == ["w1", "w2", "w3"] and r.mapping.shape == (3, 5)
    assert [w.shape for w in models.weights(r.params)] == [(4, 5), (3, 4), (5, 3)]
    assert bool(jnp.all(jnp.isfinite(r.train_loss)))
    lin = train.train(x, hidden=3, depth=4, key=jr.key(1), alpha=0.1, epochs=20, save_every=10)
    assert [w.shape for w in models.weights(lin.params)] == [(3, 5), (3, 3), (3, 3), (5, 3)]
    one = train.train(x, hidden=[3], key=jr.key(1), alpha=0.1, epochs=20, save_every=10)
    two = train.train(x, hidden=3, key=jr.key(1), alpha=0.1, epochs=20, save_every=10)
    assert bool(jnp.all(one.mapping == two.mapping))  # one width is exactly the depth-2 network


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(hidden=[]), "hidden"),
        (dict(hidden=[4, 0]), r"hidden\[1\]"),
        (dict(hidden=[4, 2.5]), r"hidden\[1\] must be an integer"),
        (dict(hidden=4, depth=1), "depth"),
        (dict(hidden=4, depth=2.0), "depth"),
        (dict(hidden=[4, 4], depth=4), "hidden has 2 widths"),
    ],
)
def test_deep_bad_input(kw, match):
    x = jr.uniform(jr.key(0), (16, 5))
    with pytest.raises(ValueError, match=match):
        train.train(x, key=jr.key(1), alpha=0.1, epochs=2, save_every=1, **kw)


def test_deep_params_that_do_not_fit():
    x = jr.uniform(jr.key(0), (16, 5))
    params = models.init_autoencoder(5, (4, 3), key=jr.key(0))
    with pytest.raises(ValueError, match=r"params must have w1 \(4, 5\), w2 \(2, 4\)"):
        train.train(x, hidden=[4, 2], key=jr.key(1), alpha=0.1, epochs=2, save_every=1, params=params)


# Small random starts (init N(0, s^2), s = 0.03 at depth 3), 1000 images, widths 8, 3000 epochs: the
# per-direction theory from |diag(V^T W(0) V)| follows the top direction only. Measured RMSE of the
# discrete prediction, directions 0-3: mnist5k AE 0.029 0.146 0.089 0.175, DAE 0.017 0.116 0.149 0.128;
# Fashion-MNIST AE 0.127 0.083 0.104 0.282 (docs/depth.md). Bounds: direction 0 < 0.2, mean of 0-3 < 0.3.
@pytest.mark.slow
@pytest.mark.parametrize("name", ["mnist5k", "fashion_mnist"])
def test_random_start_depth_three_on_real_data(name):
    kw = {"data_dir": "/usr/share/datasets/fashion-mnist"} if name == "fashion_mnist" else {}
    try:
        ds, _ = data.load_dataset(name, n=1000, **kw)
    except data.DatasetUnavailable as err:
        pytest.skip(f"{name} not installed: {err}")
    x = jnp.asarray(np.asarray(ds.x, np.float32))
    spec = spectrum.compute_spectrum(x, accumulate_dtype=jnp.float64)
    r = train.train(
        x,
        hidden=[8, 8],
        key=jr.key(3),
        epochs=3000,
        alpha=0.004,
        spectrum=spec,
        save_every=50,
        init_scale=0.03,
        precision="highest",
    )
    rmse = np.asarray(train.compare_with_theory(r, eigvecs=spec.eigvecs, w0="balanced").rmse_discrete[:4])
    assert rmse[0] < 0.2 and rmse.mean() < 0.3, rmse
