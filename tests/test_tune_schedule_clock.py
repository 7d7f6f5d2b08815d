"""The closed-form schedule objective with tuned learning-rate pieces runs the flow on the change of clock
s(t) = int_0^t alpha / N (one set of K pieces) instead of a tau = N / alpha(t) schedule merged with the
eps and gamma pieces: checked against the Bernoulli solution chained piece by piece in NumPy under the
tau schedule, in value and in gradient (central differences of that reference)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from daedyn import tune

LAM = np.array([40.0, 20.0, 9.0, 4.0, 1.0, 0.2])
PROJ = np.array([9.0, 4.5, 2.5, 0.8, 0.4, 0.3])
N, M, T, S2, AMAX = 50.0, 10.0, 300.0, 0.1, 0.5


def _reference(eps, gamma, u):
    """J from the balanced small-start flow chained piece by piece in NumPy under tau = N / alpha(t) on
    the original boundaries: on a piece, tau dw/dt = 2 w (a - k w) with a = lam - N gamma, k = lam + eps,
    so v = 1 / w obeys tau dv/dt = -2 a v + 2 k: v(t) = k / a + (v0 - k / a) exp(-2 a t / tau). Then
    J = [sum (1 - w)^2 p + M s^2 sum w^2] / (2 M), alpha = AMAX u / (1 + u) (the route's formula)."""
    edges = np.concatenate([[0.0], np.round(np.arange(1, len(eps)) * (T / len(eps))), [T]])
    alpha = AMAX * u / (1 + u)
    v = np.full_like(LAM, 1e6)  # w0 = 1e-6
    for i in range(len(eps)):
        a, k, tau = LAM - N * gamma[i], LAM + eps[i], N / alpha[i]
        v = k / a + (v - k / a) * np.exp(-2 * a * (edges[i + 1] - edges[i]) / tau)
    w = 1 / v
    return (np.sum((1 - w) ** 2 * PROJ) + M * S2 * np.sum(w**2)) / (2 * M)


def _objective():
    p = tune.problem_from_spectrum(LAM, PROJ, n=N, n_heldout=M)
    r = tune.ScheduleRoute(pieces=4, epochs=T, tune_gamma=True, tune_alpha=True, alpha_max=AMAX)
    return tune.schedule_objective_fn(p, r, alpha=0.05, eval_sigma2=S2)


EPS = np.array([0.3, 2.0, 0.05, 4.0])
GAMMA = np.array([0.001, 0.0, 0.03, 0.005])  # a = lam - N gamma != 0 in every direction
U = np.array([0.1, 0.4, 0.05, 0.2])


def test_alpha_pieces_on_the_flow_are_a_change_of_clock(x64):
    f = _objective()
    got = float(f({"eps": jnp.asarray(EPS), "gamma": jnp.asarray(GAMMA), "alpha": jnp.asarray(U)}))
    # measured 0 relative here (float64); 1e-12 leaves room for rounding differences
    # on other XLA versions
    np.testing.assert_allclose(got, _reference(EPS, GAMMA, U), rtol=1e-12)


@pytest.mark.slow  # reverse mode through the chained closed form: ~10 s of compilation on the 2-core CPU
def test_alpha_pieces_gradient_matches_differences_of_the_tau_schedule(x64):
    f = _objective()
    grad = jax.grad(lambda a: f({"eps": jnp.asarray(EPS), "gamma": jnp.asarray(GAMMA), "alpha": a}))(
        jnp.asarray(U))
    h = 1e-5 * U
    fd = [(_reference(EPS, GAMMA, U + h[i] * e) - _reference(EPS, GAMMA, U - h[i] * e)) / (2 * h[i])
          for i, e in enumerate(np.eye(4))]
    # central differences of the reference: truncation ~h^2, rounding ~1e-16 J / h; measured 5.1e-9
    # of the largest component
    np.testing.assert_allclose(grad, fd, rtol=0, atol=1e-7 * np.max(np.abs(fd)))
