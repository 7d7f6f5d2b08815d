"""The hand-written reverse mode of the fused GD recursion (``scalar_gd_fused(adjoint="checkpoint")``)
against JAX's reverse mode through the lax.scan recursion (``adjoint="autodiff"``, the reference) and
against central finite differences in float64: constant and piecewise-constant (eps, gamma, alpha)
tables, depth 2 and 3, sparse and dense saves, the start saved or not, several saved quantities with a
cotangent on every saved row."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from daedyn import dynamics
from daedyn._kernels import scalar_gd_fused

B = 4
QS = ("w", "w1", "weight_norm")


def _inputs(dtype=jnp.float64):
    k1, k2 = jax.random.split(jax.random.key(3))
    lam = jax.random.uniform(k1, (B,), dtype, 0.3, 1.5)
    w1 = jax.random.uniform(k2, (B,), dtype, 0.1, 0.6)
    return lam, lam + 0.4, jnp.full((B,), 0.03, dtype), jnp.full((B,), 0.15, dtype), w1, 0.8 * w1


def _tables(lam, m, ng, it):
    """K = 3 pieces of eps (m), gamma (ng) and alpha (inv_tau); the boundaries 4.5 and 8 are not save
    points of save_every 3 or 7, 8 is repeated (an empty piece), and backward blocks meet two rows
    (steps 3-5 and 6-8 with save_every 3)."""
    f = jnp.array([1.0, 2.0, 0.5, 1.3])[:, None]
    return lam, m[None] * f, ng[None] * f[::-1], it[None] * jnp.array([1.0, 0.7, 1.2, 0.9])[:, None]


BOUNDS = np.array([4.5, 8.0, 8.0])


def _loss(args, bounds, *, adjoint, n_saves, save_every, with_start, depth, backend="jnp"):
    out = scalar_gd_fused(*args, n_saves=n_saves, save_every=save_every, quantities=QS, backend=backend,
                          with_start=with_start, depth=depth, boundaries=bounds, adjoint=adjoint, block=4)
    # a different weight on every saved row and quantity: every row's cotangent differs
    return sum(jnp.sum(jnp.sin(o * jnp.linspace(0.5, 1.5, o.shape[0])[:, None] * (i + 1)))
               for i, o in enumerate(out))


CASES = [  # (depth, n_saves, save_every, with_start, tables)
    (2, 3, 7, False, False),
    # compiles for ~10 s on the 2-core CPU (both reverse modes, sparse saves with the start, tables)
    pytest.param(2, 3, 7, True, True, marks=pytest.mark.slow),
    (2, 12, 1, True, True),
    (3, 4, 3, False, True),
    (3, 12, 1, False, False),
]


@functools.cache
def _value_and_grad(adjoint, **kw):
    """One compiled value-and-gradient per setting, shared by the tests (bounds are traced)."""
    return jax.jit(jax.value_and_grad(lambda a, bounds: _loss(a, bounds, adjoint=adjoint, **kw)))


def _check(args, bounds, kw):
    (v, g), (v0, g0) = (_value_and_grad(a, **kw)(args, bounds) for a in ("checkpoint", "autodiff"))
    # the value under differentiation comes from the checkpointed forward: same steps, same rounding
    np.testing.assert_allclose(v, v0, rtol=1e-15)
    for x, y in zip(g, g0):
        # float64, the same derivative summed in another order: measured <= 2e-14 relative to the largest
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-13 * float(jnp.max(jnp.abs(y))))
    return g


@pytest.mark.parametrize("depth,n_saves,save_every,with_start,tables", CASES)
def test_adjoint_matches_autodiff_and_finite_differences(depth, n_saves, save_every, with_start, tables, x64):
    args = _inputs()
    if tables:
        args = (*_tables(*args[:4]), *args[4:])
    bounds = BOUNDS if tables else None
    kw = dict(n_saves=n_saves, save_every=save_every, with_start=with_start, depth=depth)
    g = _check(args, bounds, kw)
    # central differences of the values along a random direction of every input at once
    keys = jax.random.split(jax.random.key(7), len(args))
    d = [jax.random.normal(k, a.shape, a.dtype) * a for k, a in zip(keys, args)]
    h = 1e-6
    f = _value_and_grad("autodiff", **kw)
    up, down = ([a + s * h * t for a, t in zip(args, d)] for s in (1, -1))
    fd = f(up, bounds)[0] - f(down, bounds)[0]
    directional = sum(jnp.vdot(x, t) for x, t in zip(g, d))
    # truncation O(h^2) ~ 1e-12 and rounding ~ 1e-16 / h ~ 1e-10: measured <= 3e-10 relative
    np.testing.assert_allclose(directional, fd / (2 * h), rtol=1e-8)


@pytest.mark.parametrize("depth,inputs", [(2, (1,)), (3, (3, 4))])
def test_few_perturbed_constants_take_tangents_forward(depth, inputs, x64):
    # one or two perturbed constant inputs (m; inv_tau and w1): their tangents ride along the forward
    # pass and the backward pass contracts them (module docstring); dense saves with the start
    args = list(_inputs())
    kw = dict(n_saves=6, save_every=2, with_start=True, depth=depth)

    def loss(sub, adjoint):
        a = list(args)
        for i, x in zip(inputs, sub):
            a[i] = x
        return _loss(a, None, adjoint=adjoint, **kw)

    sub = [args[i] for i in inputs]
    (v, g), (v0, g0) = (jax.jit(jax.value_and_grad(functools.partial(loss, adjoint=a)))(sub)
                        for a in ("checkpoint", "autodiff"))
    np.testing.assert_allclose(v, v0, rtol=1e-15)  # measured <= 4e-16
    for x, y in zip(g, g0):  # measured <= 9e-16 of the largest
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-13 * float(jnp.max(jnp.abs(y))))
    d = [0.3 * x for x in sub]
    h = 1e-6
    f = jax.jit(functools.partial(loss, adjoint="checkpoint"))
    fd = (f([x + h * t for x, t in zip(sub, d)]) - f([x - h * t for x, t in zip(sub, d)])) / (2 * h)
    np.testing.assert_allclose(sum(jnp.vdot(x, t) for x, t in zip(g, d)), fd, rtol=1e-8)


def test_adjoint_pieces_shorter_than_a_block(x64):
    # boundaries 1, 2, 3 inside one 3-step block: the block meets three rows, more than the fast
    # accumulation keeps apart, so the backward pass runs again with blocks of two steps; the gradient is
    # the same
    # (the setting of CASES[3]: its compiled programs are reused)
    args = _inputs()
    args = (*_tables(*args[:4]), *args[4:])
    _check(args, np.array([1.0, 2.0, 3.0]), dict(n_saves=4, save_every=3, with_start=False, depth=3))


def test_forward_values_unchanged_and_float32():
    args = _inputs(jnp.float32)
    kw = dict(n_saves=3, save_every=7, quantities=QS, with_start=True)
    a = scalar_gd_fused(*args, **kw, adjoint="checkpoint")
    b = scalar_gd_fused(*args, **kw, adjoint="autodiff")
    for x, y in zip(a, b):  # the same primal computation: bitwise
        np.testing.assert_array_equal(x, y)
    loss = dict(n_saves=3, save_every=7, with_start=True, depth=2)
    g = jax.jit(jax.grad(lambda a: _loss(a, None, adjoint="checkpoint", **loss)))(args)
    g0 = jax.jit(jax.grad(lambda a: _loss(a, None, adjoint="autodiff", **loss)))(args)
    for x, y in zip(g, g0):
        assert x.dtype == jnp.float32
        # float32 rounding of two summation orders over 21 steps: measured <= 2e-7 of the largest
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-5 * float(jnp.max(jnp.abs(y))))


def test_forward_mode_needs_autodiff_and_pallas_keeps_both():
    args = _inputs(jnp.float32)
    kw = dict(n_saves=2, save_every=3)
    ones = tuple(jnp.ones_like(a) for a in args)
    with pytest.raises(TypeError, match="custom_vjp"):
        jax.jvp(lambda *a: scalar_gd_fused(*a, **kw)[0], args, ones)
    t = jax.jvp(lambda *a: scalar_gd_fused(*a, **kw, adjoint="autodiff")[0], args, ones)[1]
    ti = jax.jvp(lambda *a: scalar_gd_fused(*a, **kw, backend="interpret", block=4, adjoint="autodiff")[0],
                 args, ones)[1]
    np.testing.assert_allclose(ti, t, rtol=1e-6)  # the same tangent recursion
    # reverse mode of the (interpreted) Pallas kernel through the hand-written adjoint
    def loss(m, **opt):
        return jnp.sum(scalar_gd_fused(args[0], m, *args[2:], **kw, **opt)[0] ** 2)

    g = jax.grad(functools.partial(loss, backend="interpret", block=4, time_major=False))(args[1])
    g0 = jax.grad(functools.partial(loss, adjoint="autodiff"))(args[1])
    np.testing.assert_allclose(g, g0, rtol=1e-5)


def test_scalar_gd_adjoint_option(x64):
    lam = jnp.array([1.0, 0.5])
    run = dict(alpha=0.1, epochs=20, save_every=10, backend="jnp")
    g = jax.grad(lambda e: jnp.sum(dynamics.scalar_gd(lam, e, 0.1, 0.1, **run).w))(0.3)
    g0 = jax.grad(lambda e: jnp.sum(dynamics.scalar_gd(lam, e, 0.1, 0.1, **run, adjoint="autodiff").w))(0.3)
    np.testing.assert_allclose(g, g0, rtol=1e-13)  # float64 rounding only
    jax.jvp(lambda e: dynamics.scalar_gd(lam, e, 0.1, 0.1, **run, adjoint="autodiff").w, (0.3,), (1.0,))
    with pytest.raises(ValueError, match="adjoint"):
        dynamics.scalar_gd(lam, 0.3, 0.1, 0.1, **run, adjoint="forward")


@pytest.mark.slow  # four hessian programs: ~6 s of compilation on the 2-core CPU
def test_hessian_through_the_adjoint(x64):
    # forward-over-reverse differentiates the two passes of the adjoint (a custom_vjp refuses jvp only)
    lam = jnp.array([1.0, 0.5])
    run = dict(alpha=0.1, epochs=20, save_every=10, backend="jnp")

    def square(e, adjoint):
        return jnp.sum(dynamics.scalar_gd(lam, e, 0.1, 0.1, **run, adjoint=adjoint).w ** 2)

    h, h0 = (jax.hessian(functools.partial(square, adjoint=a))(0.3) for a in ("checkpoint", "autodiff"))
    np.testing.assert_allclose(h, h0, rtol=1e-12)  # measured 2e-16
