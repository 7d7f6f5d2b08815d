"""Deep linear DAEs from a random start: the alignment phase modelled, per direction (docs/depth.md).

From a small random start the hidden layers of a network with L >= 3 weight matrices must first
align with each direction before its mapping grows, and the directions compete for the shared middle
layers; a single balanced start per direction (``|diag(V^T W(0) V)|``) misses both. This module keeps
the *paths* of the top ``active`` eigen-directions exactly and summarises the other D - K directions
by three small matrices, so that the cost per epoch is O(K H^2 + H^3) instead of training's O(D H^2).

In the eigenbasis write the first factor's columns a_k = (W_1 V)[:, k], the last factor's rows
b_i = (V^T W_L)[i, :] and Pi = W_{L-1} ... W_2 (H_1 -> H_{L-1}). With G_ik = lam_k delta_ik - m_k W_ik
(m = lam + eps) the loss's negative gradients are exactly

    dW_1[:, k] = Pi^T sum_i b_i G_ik,      dW_L[i, :] = sum_k G_ik (Pi a_k)^T,
    dW_l       = (W_{L-1} .. W_{l+1})^T C (W_{l-1} .. W_2)^T,   C = sum_ik b_i G_ik a_k^T = R - Q Pi P,

with Q = sum_i b_i b_i^T, P = sum_k m_k a_k a_k^T and R = sum_k lam_k b_k a_k^T. Split every sum into the
top-K (active) directions, which move exactly, and the rest (background). A background row moves as
``tau db_i = -(S + n gamma) b_i`` up to its own drive lam_i Pi a_i, with S = Pi P Pi^T common to all i
(the learned directions' hidden activity projects the untrained output rows out of it), so its Gram
matrix Q_bg follows exactly: Q_bg <- (I - (S + n gamma) / tau) Q_bg (I - (S + n gamma) / tau)^T per
epoch. A background column moves as ``tau da_k = -(m_k T + n gamma) a_k`` up to its drive, with
T = Pi^T Q Pi; its noise part eps T is common to all k and is kept (P_bg <- U P_bg U^T,
R_bg <- (I - (S + n gamma) / tau) R_bg U^T, U = I - (eps T + n gamma) / tau), the lam_k T part is
dropped as the rows' own drive is (eps: the background's mean when it is an array).
Nothing is fitted: the only truncation is K, and the
model is the exact gradient descent of the whole network when K = D.

Any per-direction quadratic objective. Nothing above uses lam_k and m_k beyond the expected loss
(1/(2N)) sum_k [m_k |W e_k|^2 - 2 k_k W_kk] + const, whose negative gradient is G_ik = k_k delta_ik -
m_k W_ik: with ``noise=`` (a value with ``direction_moments(lam, n) -> (k, m)``) lam_k is replaced by
k_k and lam_k + eps by m_k everywhere, the background's common damping by the background's mean of
m - k. A diffusion objective gives (k, m) = (B, A) (docs/diffusion.md): its M = E[w a^2 (Sigma + N s^2)]
and K = E[w a ((1 - c_skip) Sigma - c_skip N s^2)] are diagonal in Sigma's eigenbasis, so the algebra
is the same, and k = B < 0 is allowed: such a direction is the mirror image (u -> -u, k -> -k, the
last factor's sign flipped) of one with k = |B| > 0, learned from the anti-aligned part of the start.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from daedyn._checks import check_int, check_range, float_dtype

__all__ = ["random_start_mapping"]


def _chain(ms, dim):
    """prod of the matrices ``ms`` applied in order (ms[0] first); identity of size ``dim`` if none."""
    out = jnp.eye(dim, dtype=ms[0].dtype) if ms else None
    for m in ms:
        out = m @ out
    return out


@functools.partial(jax.jit, static_argnames=("epochs", "save_every", "k"))
def _run(lam, m_all, gamma, tau, n, ws, *, epochs: int, save_every: int, k: int):
    """``lam``: the drive k_j of each direction (lam, or a corruption's k); ``m_all``: m_j."""
    dtype = lam.dtype
    first, mids, last = ws[0], list(ws[1:-1]), ws[-1]
    h1, h_last = first.shape[0], last.shape[1]
    eps = m_all - lam
    la, ma = lam[:k], m_all[:k]
    a, b = first[:, :k], last[:k, :]
    a_bg, b_bg = first[:, k:], last[k:, :]
    q_bg = b_bg.T @ b_bg
    p_bg = (a_bg * m_all[None, k:]) @ a_bg.T
    r_bg = (b_bg.T * lam[None, k:]) @ a_bg.T
    g = n * gamma
    inv_tau = 1.0 / tau
    eye_last = jnp.eye(h_last, dtype=dtype)
    eye_first = jnp.eye(h1, dtype=dtype)
    eps_bg = jnp.mean(jnp.broadcast_to(eps, lam.shape)[k:]) if k < lam.shape[0] else jnp.zeros((), dtype)

    def pi_of(mids):
        return _chain(mids, h1) if mids else jnp.eye(h1, dtype=dtype)

    def mapping(state):
        a, mids, b = state[0], state[1], state[2]
        return jnp.einsum("kh,hk->k", b, pi_of(mids) @ a)

    def step(state, _):
        a, mids, b, q_bg, p_bg, r_bg = state
        pi = pi_of(mids)
        q = q_bg + b.T @ b
        p = p_bg + (a * ma[None, :]) @ a.T
        r = r_bg + (b.T * la[None, :]) @ a.T
        c = r - q @ pi @ p
        da = pi.T @ (b.T * la[None, :] - q @ pi @ (a * ma[None, :]))
        db = (pi @ a * la[None, :]).T - b @ (pi @ p @ pi.T)
        dmids = []
        for l in range(len(mids)):
            left = _chain(mids[l + 1:], mids[l].shape[0]) if l + 1 < len(mids) else None
            right = _chain(mids[:l], h1) if l else None
            d = c if left is None else left.T @ c
            d = d if right is None else d @ right.T
            dmids.append(d)
        shrink = eye_last - (pi @ p @ pi.T + g * eye_last) * inv_tau
        # background columns: the noise part of their damping, eps Pi^T Q Pi, is common to all of them
        shrink_in = eye_first - (eps_bg * (pi.T @ q @ pi) + g * eye_first) * inv_tau
        new = (a + (da - g * a) * inv_tau,
               [m + (dm - g * m) * inv_tau for m, dm in zip(mids, dmids)],
               b + (db - g * b) * inv_tau,
               shrink @ q_bg @ shrink.T, shrink_in @ p_bg @ shrink_in.T, shrink @ r_bg @ shrink_in.T)
        return new, None

    def save(state, _):
        state, _ = jax.lax.scan(step, state, None, length=save_every)
        return state, mapping(state)

    state = (a, mids, b, q_bg, p_bg, r_bg)
    _, saved = jax.lax.scan(save, state, None, length=epochs // save_every)
    return jnp.concatenate([mapping(state)[None], saved], axis=0)


def random_start_mapping(lam: ArrayLike, ws, eps: ArrayLike = 0.0, gamma: ArrayLike = 0.0, *, tau: ArrayLike,
                         n: ArrayLike, epochs: int, save_every: int = 1, active: int = 64,
                         noise=None) -> Array:
    """Per-direction mapping of a deep linear network trained by full-batch gradient descent from the
    given (random) start, by the alignment model of the module docstring: the top ``active``
    directions' paths exactly, the rest as a background of three small matrices.

    Args:
      lam: (D,) eigenvalues of Sigma, descending (the model keeps the first ``active``).
      ws: the L >= 2 factors in Sigma's eigenbasis, ``(W_1 V, W_2, ..., W_{L-1}, V^T W_L)``
        (``daedyn.dynamics.to_eigenbasis``).
      eps: noise level (m = lam + eps), >= 0; a number.
      gamma: weight decay, >= 0; a number.
      tau: n / alpha, > 0 (one gradient-descent step per epoch, as training).
      n: number of samples N, > 0.
      epochs: number of steps; a multiple of ``save_every``.
      save_every: epochs between saved points (the start is saved).
      active: K, the number of directions modelled exactly (1 <= K; min(K, D) is used).
      noise: instead of ``eps``, a value with ``direction_moments(lam, n) -> (k, m)`` (a
        :class:`daedyn.noise.Noise`, a :class:`daedyn.diffusion.Objective` with (k, m) = (B, A);
        k < 0 allowed; module docstring), constant in time.
    Returns:
      (epochs / save_every + 1, K) mapping of the K active directions, in the dtype of the inputs.
    Raises:
      ValueError: lam < 0, eps < 0, gamma < 0, tau <= 0, n <= 0, fewer than two factors, factor
        shapes that do not chain, epochs not a multiple of save_every, or active < 1.
    Example:
      >>> import jax
      >>> from daedyn import dynamics
      >>> lam = jnp.array([4.0, 2.0, 1.0, 0.5])
      >>> ws = dynamics.random_init(4, (3, 3), init_scale=0.3, key=jax.random.key(0))  # eigenbasis = inputs
      >>> w = random_start_mapping(lam, ws, tau=10.0, n=1, epochs=400, save_every=400, active=4)
      >>> bool(abs(float(w[-1, 0]) - 1.0) < 1e-3)  # the top direction learned
      True
    """
    epochs = check_int("epochs", epochs, 0)
    save_every = check_int("save_every", save_every, 1)
    active = check_int("active", active, 1)
    if epochs % save_every:
        raise ValueError(f"epochs ({epochs}) must be a multiple of save_every ({save_every})")
    ws = tuple(ws)
    if len(ws) < 2:
        raise ValueError(f"ws must hold L >= 2 factors; got {len(ws)}")
    for i in range(1, len(ws)):
        if np.shape(ws[i])[-1] != np.shape(ws[i - 1])[0]:
            raise ValueError(f"ws[{i}] has shape {np.shape(ws[i])}, which does not chain with ws[{i - 1}] "
                             f"{np.shape(ws[i - 1])}")
    d = np.shape(ws[0])[1]
    if np.shape(lam) != (d,) or np.shape(ws[-1])[0] != d:
        raise ValueError(f"lam must have shape (D,) = ({d},) and ws[-1] D rows; got {np.shape(lam)}, "
                         f"{np.shape(ws[-1])}")
    check_range("lam", lam, 0.0)
    check_range("eps", eps, 0.0)
    check_range("gamma", gamma, 0.0)
    check_range("tau", tau, 0.0, lo_open=True)
    check_range("n", n, 0.0, lo_open=True)
    dtype = float_dtype(lam, *ws)
    cast = lambda x: jnp.asarray(x, dtype)
    if noise is not None:
        from daedyn.theory._args import direction_moments

        if np.any(np.asarray(eps) != 0):
            raise ValueError("give eps or noise, not both")
        kk, mm = direction_moments(noise, cast(lam), cast(n))
        drive, m_all = jnp.broadcast_to(cast(kk), (d,)), jnp.broadcast_to(cast(mm), (d,))
    else:
        drive = cast(lam)
        m_all = drive + jnp.broadcast_to(cast(eps), (d,))
    return _run(drive, m_all, cast(gamma), cast(tau), cast(n), tuple(cast(w) for w in ws),
                epochs=epochs, save_every=save_every, k=min(active, d))
