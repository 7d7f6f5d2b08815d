"""Routes 2 (integrated dynamics, daedyn.dynamics) and 3 (actual training, daedyn.train).

Both run a whole number of gradient steps inside ``lax.scan`` and are differentiated in reverse
mode; memory stays bounded for thousands of steps because every block of ``checkpoint_every`` steps
is wrapped in ``jax.checkpoint`` (only block boundaries are stored; a block is recomputed during the
backward pass).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.random as jr
from jax import lax

__all__ = ["dynamics_mapping", "train_objective", "prepare_train_data"]


def _chunked(run, carry, steps: int, chunk: int):
    """``run(carry, k)`` advances k steps; apply it ``steps`` times in checkpointed blocks of ``chunk``."""
    n_chunks, rem = divmod(int(steps), int(chunk))
    if n_chunks:
        body = jax.checkpoint(lambda c, _: (run(c, chunk), None))
        carry, _ = lax.scan(body, carry, None, length=n_chunks)
    if rem:
        carry = jax.checkpoint(lambda c: run(c, rem))(carry)
    return carry


def dynamics_mapping(data, h, *, hidden, epochs, init, checkpoint_every, options):
    """Per-direction mapping diag(Wb2 Wb1) after ``epochs`` gradient-descent steps (route 2).

    ``init="balanced"``: the exact scalar recursion of ``daedyn.dynamics.scalar_gd`` per direction
    from w1 = w2 = sqrt(w0) (directions j >= hidden start at 0 and stay there). ``"orthogonal"`` /
    ``"random"``: the full-matrix recursion in the eigenbasis with ``daedyn.dynamics.matrix_rhs``
    from ``orthogonal_init`` (diagonal entries sqrt(w0)) or ``random_init`` (scale ``init_scale``);
    per-direction eps_j enter as Wb1 (Lam + diag(eps)), the gradient of (1/2N) tr(W E W^T).
    """
    from daedyn import dynamics

    lam = data["eigvals"]
    dt = lam.dtype
    d = lam.shape[-1]
    n = data["n"]
    eps, gamma, alpha, w0 = h["eps"], h["gamma"], h["alpha"], h["w0"]
    hh = d if hidden is None else hidden
    if init == "balanced":
        mask = (jnp.arange(d) < hh).astype(dt)
        u = jnp.sqrt(w0) * mask

        def run(carry, k):
            tr = dynamics.scalar_gd(lam, eps, carry[0], carry[1], alpha=alpha, epochs=k, gamma=gamma,
                                    n=n, save_every=k, check_stability=False)
            return tr.w1[..., -1], tr.w2[..., -1]

        w1, w2 = _chunked(run, (u, u), epochs, checkpoint_every)
        return w1 * w2
    if init == "orthogonal":
        key = data.get("key")
        s = jnp.sqrt(w0)
        wb1, wb2 = dynamics.orthogonal_init(d, hh, s, s, key=key, dtype=dt)
    else:
        wb1, wb2 = dynamics.random_init(d, hh, scale=options["init_scale"], key=data["key"], dtype=dt)
    precision = options["precision"]
    inv_tau = alpha / n
    eps = eps[None, :] if eps.ndim == 1 else eps  # per-direction eps multiplies Wb1's columns

    def run(carry, k):
        def step(_, y):
            d1, d2 = dynamics.matrix_rhs(lam, y[0], y[1], eps=eps, gamma=gamma, n=n, precision=precision)
            return y[0] + inv_tau * d1, y[1] + inv_tau * d2

        return lax.fori_loop(0, k, step, carry)

    wb1, wb2 = _chunked(run, (wb1, wb2), epochs, checkpoint_every)
    return jnp.sum(wb2 * wb1.T, axis=-1)  # diag(Wb2 Wb1) without forming the D x D product


def prepare_train_data(problem, *, hidden, key, init_scale, activation, marginalised, precision):
    """Concrete arrays for route 3: TrainData, initial parameters, and the noise key."""
    from daedyn import models, train

    linear = models.is_linear(activation)
    path = "eigen" if (linear and marginalised) else "data"
    spec = _Spec(problem.eigvals, problem.eigvecs)
    tdata = train.prepare_data(problem.x_train, spectrum=spec, linear=linear, path=path,
                               dtype=problem.eigvals.dtype)
    d = problem.x_train.shape[1]
    k_init, k_noise = jr.split(key)
    params = models.init_autoencoder(d, d if hidden is None else hidden, key=k_init, scale=init_scale)
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, problem.eigvals.dtype), params)
    return {"train_data": tdata, "params0": params, "noise_key": k_noise}, path


class _Spec:
    def __init__(self, eigvals, eigvecs):
        self.eigvals, self.eigvecs = eigvals, eigvecs


def train_objective(data, h, *, hidden, epochs, checkpoint_every, options):
    """Held-out loss of an autoencoder trained for ``epochs`` epochs by daedyn.train (route 3).

    Linear networks: the exact expected loss of the learned map W = W2 W1 on the held-out data,
    1/(2M) ||X_ho - X_ho W^T||^2 + (s_eval^2 / 2) ||W||_F^2. Nonlinear networks: the reconstruction
    of held-out inputs corrupted with fixed-key Gaussian noise of variance s_eval^2 (pathwise).
    """
    from daedyn import models, train

    activation = options["activation"]
    marginalised = options["marginalised"]
    record_every = checkpoint_every if epochs % checkpoint_every == 0 else epochs
    run = train.train_fn(epochs=epochs, record_every=record_every, activation=activation,
        noise=None if marginalised else "gaussian", marginalised=marginalised,
        path=options["path"], precision=options["precision"], observables=("weight_norm",))
    n = data["n"]
    hyper = train.Hyper(alpha=h["alpha"], gamma=h["gamma"], s2=h["eps"] / n)
    params, _ = run(data["params0"], data["train_data"], hyper, data["noise_key"])
    xh = data["x_heldout"]
    m = data["n_heldout"]
    s2e = h["eval_sigma2"]
    if models.is_linear(activation):
        w = jnp.matmul(params["w2"], params["w1"], precision=options["precision"])
        err = xh - jnp.matmul(xh, w.T, precision=options["precision"])
        return jnp.sum(err * err) / (2 * m) + s2e / 2 * jnp.sum(w * w)
    e = jr.normal(jr.fold_in(data["noise_key"], 2**30), xh.shape, xh.dtype)
    rec = models.reconstruct(params, xh + jnp.sqrt(s2e) * e, activation, precision=options["precision"])
    return jnp.sum((xh - rec) ** 2) / (2 * m)
