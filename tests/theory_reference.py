"""The reference for daedyn.theory's tests: Eqs. (2)-(3) with weight decay, integrated by scipy's
DOP853 in float64, all grid trajectories stacked into one vectorised system (cheap: one solve for
the whole grid)."""

import jax
import jax.numpy as jnp
import numpy as np
from scipy.integrate import solve_ivp


class Moments:
    """A toy corruption value with given per-direction coefficients (k, m): the ``noise=`` protocol only
    (a pytree, so it passes through jit and grad)."""

    def __init__(self, k, m):
        self.k, self.m = k, m

    def direction_moments(self, lam, n):
        shape = jnp.shape(lam)
        return jnp.broadcast_to(jnp.asarray(self.k), shape), jnp.broadcast_to(jnp.asarray(self.m), shape)


jax.tree_util.register_pytree_node(Moments, lambda v: ((v.k, v.m), None), lambda _, c: Moments(*c))


def reference_flow(lam, eps, w1, w2, ts, gamma=0.0, n=1.0):
    """(w1(t), w2(t)) for each grid point at times ts (tau = 1), float64, rtol 1e-12."""
    lam, eps, w1, w2, gamma, n = np.broadcast_arrays(*(np.asarray(v, np.float64) for v in
                                                       (lam, eps, w1, w2, gamma, n)))
    m = lam.size

    def rhs(_, y):
        a, b = y[:m], y[m:]
        w = a * b
        common = lam - (lam + eps) * w
        return np.concatenate([b * common - n * gamma * a, a * common - n * gamma * b])

    # Integrate from one output time to the next and restart there: solver steps end exactly on the
    # output times, so no dense-output interpolation (less accurate than the steps) is involved.
    ys = [np.concatenate([w1.ravel(), w2.ravel()])]
    for t0, t1 in zip(ts[:-1], ts[1:]):
        if t1 == t0:
            ys.append(ys[-1])
            continue
        sol = solve_ivp(rhs, (t0, t1), ys[-1], method="DOP853", rtol=1e-12, atol=1e-300)
        assert sol.success
        ys.append(sol.y[:, -1])
    y = np.stack(ys)
    return y[:, :m], y[:, m:]  # (T, m) each
