"""TEMPORARY closed form until daedyn.theory lands (removed then)."""
import jax.numpy as jnp


def small_init_trajectory(t, lam, eps=0.0, gamma=0.0, *, w0, tau=1.0, n=1):
    lam = jnp.maximum(lam, 1e-30)
    a = lam - n * gamma
    e = jnp.exp(-2 * a * t / tau)
    return a / ((lam + eps) * (1 - e) + a / w0 * e)
