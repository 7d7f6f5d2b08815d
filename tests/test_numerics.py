"""daedyn._numerics' derivative helpers against closed forms differentiated by JAX (independent paths)."""

import jax
import jax.numpy as jnp
import numpy as np

from daedyn._numerics import implicit_root, nan_derivative


def _cube_root_by_newton(a, b, one_step: bool):
    """The root of x^3 - a b = 0 by a stopped Newton iteration; then either the usual last differentiable
    Newton step (``one_step``) or :func:`implicit_root`."""
    sg = jax.lax.stop_gradient
    c = sg(a * b)
    x = sg(jax.lax.fori_loop(0, 40, lambda _, x: x - (x**3 - c) / (3 * x**2), jnp.ones_like(c)))
    if one_step:
        return x - (x**3 - a * b) / (3 * x**2)
    return implicit_root(lambda y, p: y**3 - p[0] * p[1], x, (a, b))


def test_implicit_root_derivatives_of_every_order(x64):
    # x(a, b) = (a b)^(1/3): its Hessian and a third derivative, by JAX on the explicit formula
    p = jnp.array([2.0, 3.5])
    exact = lambda q: jnp.cbrt(q[0] * q[1])  # noqa: E731
    ours = lambda q: _cube_root_by_newton(q[0], q[1], one_step=False)  # noqa: E731
    np.testing.assert_allclose(ours(p), exact(p), rtol=1e-15)
    # measured <= 2e-16 relative (rounding); bound 1e-13
    np.testing.assert_allclose(jax.grad(ours)(p), jax.grad(exact)(p), rtol=1e-13)
    np.testing.assert_allclose(jax.hessian(ours)(p), jax.hessian(exact)(p), rtol=1e-13)
    np.testing.assert_allclose(jax.jacfwd(jax.jacfwd(ours))(p), jax.hessian(exact)(p), rtol=1e-13)
    np.testing.assert_allclose(jax.jacrev(jax.jacrev(ours))(p), jax.hessian(exact)(p), rtol=1e-13)
    third = lambda f: jax.jacfwd(jax.hessian(f))(p)  # noqa: E731
    np.testing.assert_allclose(third(ours), third(exact), rtol=1e-12)
    # under vmap and jit as the solvers use it
    batch = jnp.array([[2.0, 3.5], [0.5, 0.1], [7.0, 1.0]])
    h = jax.jit(jax.vmap(jax.hessian(ours)))(batch)
    np.testing.assert_allclose(h, jax.vmap(jax.hessian(exact))(batch), rtol=1e-12)
    # what it replaces: one differentiable Newton step has exact first derivatives, wrong second ones
    one = lambda q: _cube_root_by_newton(q[0], q[1], one_step=True)  # noqa: E731
    np.testing.assert_allclose(jax.grad(one)(p), jax.grad(exact)(p), rtol=1e-13)
    assert not np.allclose(jax.hessian(one)(p), jax.hessian(exact)(p), rtol=1e-3)


def test_nan_derivative_marks_only_the_directions_that_move_it(x64):
    x = jnp.float64(0.3)
    value, tangent = jax.jvp(nan_derivative, (x,), (jnp.float64(1.0),))
    assert value == 0.0 and np.isnan(tangent)
    assert jax.jvp(nan_derivative, (x,), (jnp.float64(0.0),))[1] == 0.0

    # as the first-order rules use it: a coefficient of a tangent, inside a custom JVP, under jit and vmap
    @jax.custom_jvp
    def first_order(u, g):
        return u

    @first_order.defjvp
    def _rule(primals, tangents):
        (u, g), (u_dot, g_dot) = primals, tangents
        mark = nan_derivative(g)
        return u, u_dot * (1.0 + mark) + g_dot * (u**2 + mark)

    f = lambda p: jnp.sum(jax.jit(jax.vmap(lambda a, g: first_order(jnp.sin(a), g)))(p[:2], p[2:]))  # noqa: E731
    p = jnp.array([1.0, 2.0, 0.0, 0.1])
    # values and first derivatives untouched: d/da sin a, d/dg sin^2 a
    np.testing.assert_allclose(jax.grad(f)(p), [np.cos(1.0), np.cos(2.0), np.sin(1.0) ** 2, np.sin(2.0) ** 2],
                               rtol=1e-15)
    h = np.asarray(jax.hessian(f)(p))
    # d/da (d/dg) = 2 sin a cos a is formed (the rule's coefficient carries its derivatives); the entries
    # needing the missing d/dg terms are NaN; the (a, a) ones exact
    np.testing.assert_allclose(h[2, 0], 2 * np.sin(1.0) * np.cos(1.0), rtol=1e-15)
    np.testing.assert_allclose([h[0, 0], h[1, 1]], [-np.sin(1.0), -np.sin(2.0)], rtol=1e-15)
    assert np.isnan(h[0, 2]) and np.isnan(h[2, 2])
    # forward over forward: NaN in the g columns only (there across elements too: 0 * NaN), the rest equal
    hf = np.asarray(jax.jacfwd(jax.jacfwd(f))(p))
    assert np.isnan(hf[:, 2:]).all() and not np.isnan(hf[:, :2]).any()
    np.testing.assert_allclose(hf[:, :2], h[:, :2], rtol=1e-15)
