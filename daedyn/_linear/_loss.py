"""The expected loss of a linear DAE and its gradient, written once for every caller: one quadratic form.

For factors ws = (W_1, ..., W_L) with W = W_L ... W_1 and weight decay gamma, every corruption (and
every denoiser trained over a distribution of noise levels) gives the same quadratic form

    L = 1/(2n) [tr(W M W^T) - 2 tr(W K) + tr S] + (gamma/2) sum_l ||W_l||^2,    G = dL/dW = (W M - K) / n,

with M = E[x~ x~^T] the corrupted input's second moment, K = E[x x~^T] the target-input cross moment
(symmetric for every corruption here) and S = E[x x^T] the target's, each summed over the n samples.
The functions below take K (the argument called ``sigma``) and C = M - K (``c``); for every unbiased
corruption (Gaussian, covariance, inverted dropout) K = S = Sigma and C is the corruption's own term:

    L = 1/(2n) [tr Sigma - 2 tr(W Sigma) + tr(W (Sigma + C) W^T)] + (gamma/2) sum_l ||W_l||^2.

A biased corruption (raw masking: K = (1 - p) Sigma, M = (1 - p)^2 Sigma + p (1 - p) diag(Sigma))
passes K and M - K, and the loss's constant tr S as ``s_trace`` (:func:`loss`); the gradient and the
dynamics need only K and M.

Isotropic Gaussian noise of variance s^2 is C = eps I with eps = n s^2 (the paper's case, authors'
scaling; docs/CONTRACTS.md). With G = dL/dW = (1/n) [W (Sigma + C) - Sigma] and
Q_l = W_L ... W_{l+1}, S_l = W_{l-1} ... W_1 (identity when empty),

    dL/dW_l = Q_l^T G S_l^T + gamma W_l,

and gradient descent with rate alpha is the Euler step of tau dW_l/dt = -n dL/dW_l with tau = n/alpha,
one step per epoch. :func:`rhs` returns tau dW_l/dt, i.e. Q_l^T (Sigma - W A) S_l^T - n gamma W_l with
A = Sigma + C.

Sigma and C come in the basis of the weights, each as a scalar (times I), a vector (diagonal) or a
(D, D) matrix: in the eigenbasis Sigma is the vector lam and isotropic noise the scalar eps; a
general corruption matrix becomes V^T C V there. The representation is static, so the cheapest
algebra is chosen at trace time (a diagonal is a column scaling, a matrix a matmul).

Forms of the gradient (same values, different costs; L = 2 counts with D inputs, H hidden units):

- ``"gram"``: Q_l^T Sigma S_l^T - (Q_l^T Q_l) W_l (S_l A S_l^T): small Gram matrices, 4 D H^2
  multiply-adds for L = 2 with diagonal Sigma and C. Any L.
- ``"square"``: forms M = Sigma - W A (D x D) and Q_l^T M S_l^T: 3 D^2 H for L = 2. Any L.
- ``"gram_t"``: the gram form for L = 2 on the transposed state (W_1, W_2^T), both H x D, so that
  no step transposes anything; returns (tau dW_1/dt, tau dW_2^T/dt).

:func:`choose_form` picks "gram" when 4 H <= 3 D, else "square".
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array

from daedyn._linear._basis import (
    Factors,
    MatMul,
    inner_product,
    mapping,
    product,
    svdvals,
    times,
    weight_norm,
)
from daedyn._linear._measure import fastest_form, flop_form

__all__ = ["FORMS", "LOSS_FORMS", "choose_form", "check_form", "trace_of", "noise_term", "loss",
           "data_loss", "rhs", "grad", "gd_step", "observe"]

FORMS = ("gram", "gram_t", "square")
LOSS_FORMS = ("gram", "residual")


def choose_form(d: int, h: int) -> str:
    """The cheaper gradient form by matmul multiply-adds: 4 D H^2 (gram) vs 3 D^2 H (square)."""
    return flop_form(d, h)


def check_form(form: str, d: int, h: int, depth: int = 2, *, measure: dict | None = None) -> str:
    """Resolve ``"auto"`` and validate a form name (``gram_t`` exists for depth 2 only).

    ``measure``: the run's ``dtype``, ``batch``, ``precision`` and ``transposed_ok`` (state kept as
    (W_1, W_2^T)): "auto" is then the fastest form measured once per process for large steps
    (:mod:`daedyn._linear._measure`); without it, the flop count."""
    if form == "auto":
        form = choose_form(d, h) if measure is None else fastest_form(rhs, d, h, depth=depth, **measure)
    if form not in FORMS:
        raise ValueError(f"form must be 'auto', 'gram', 'gram_t' or 'square'; got {form!r}")
    if form == "gram_t" and depth != 2:
        raise ValueError(f"form='gram_t' needs depth 2 (two factors); got depth {depth}")
    return form


def trace_of(a: Array, d: int) -> Array:
    """tr(A) for A given as a scalar (A = a I_d), a vector (diagonal) or a matrix."""
    if a.ndim == 0:
        return d * a
    return jnp.sum(a) if a.ndim == 1 else jnp.trace(a)


def _gram_quad(ws: Factors, a: Array, mm: MatMul) -> Array:
    """tr(W A W^T) = sum((W_L^T W_L) * (P A P^T)), both small and symmetric; P = W_{L-1}...W_1."""
    p = inner_product(ws, mm)
    return jnp.sum(mm(ws[-1].T, ws[-1]) * mm(times(p, a, mm), p.T))


def noise_term(ws: Factors, c, mm: MatMul) -> Array:
    """tr(W C W^T): the marginalised corruption term (times 1/(2n) in the loss)."""
    return _gram_quad(ws, jnp.asarray(c), mm)


def loss(ws: Factors, sigma, c=0.0, *, n=1.0, gamma=0.0, mm: MatMul, form: str = "gram",
         s_trace=None) -> Array:
    """The expected loss L of the module docstring, for one network.

    Args:
      ws: factors (W_1, ..., W_L).
      sigma: K in the weights' basis (Sigma for unbiased corruptions): (D,) diagonal (the eigenvalues
        lam in the eigenbasis) or (D, D).
      c: C = M - K in the same basis: scalar eps, (D,) or (D, D).
      s_trace: tr S, the target's summed second moment (the loss's constant); default tr K (exact
        whenever K = S, every unbiased corruption).
      n: the normaliser of the data term (the sample count N; N D / 2 for a mean over entries).
      gamma: weight decay.
      mm: matmul helper (:func:`daedyn._linear.matmul_fn`).
      form: ``"gram"`` (O(D H^2), small Gram matrices) or ``"residual"`` (forms I - W first: accurate
        near W = I where the gram form cancels, O(D^2 H + D^3) with a full Sigma).
    """
    sigma, c = jnp.asarray(sigma), jnp.asarray(c)
    wl = ws[-1]
    d = wl.shape[0]
    if form == "residual":
        w = product(ws, mm)
        r = jnp.eye(d, dtype=w.dtype) - w
        total = jnp.sum(times(r, sigma, mm) * r) + jnp.sum(times(w, c, mm) * w)
    elif form == "gram":
        p = inner_product(ws, mm)
        ps = times(p, sigma, mm)  # P Sigma
        cross = jnp.sum(wl.T * ps)  # tr(W_L P Sigma) = tr(W Sigma)
        quad = jnp.sum(mm(wl.T, wl) * mm(ps + times(p, c, mm), p.T))  # tr(W (Sigma + C) W^T)
        total = trace_of(sigma, d) - 2 * cross + quad
    else:
        raise ValueError(f"loss form must be one of {LOSS_FORMS}; got {form!r}")
    if s_trace is not None:  # the constant is tr S, not tr K
        total = total + (s_trace - trace_of(sigma, d))
    return total / (2 * n) + gamma / 2 * weight_norm(ws)


def data_loss(ws: Factors, x: Array, c=0.0, *, gamma=0.0, mm: MatMul, mean_scale=1.0) -> Array:
    """The same loss straight from data rows x (N, D) (row convention: reconstruction x W^T):

        1/(2N) [||X - s X W^T||_F^2 + tr(W C W^T)] + (gamma/2) sum_l ||W_l||^2,

    for a corruption whose mean is s x (``mean_scale``; 1 unbiased, 1 - p raw masking) and whose
    summed covariance is C = M - s^2 Sigma (so K = s Sigma). The reference for :func:`loss`:
    O(N D H) per evaluation, differentiated with ``jax.grad``.
    """
    recon = x * mean_scale if not (isinstance(mean_scale, float) and mean_scale == 1.0) else x
    for w in ws:
        recon = mm(recon, w.T)
    recon_err = jnp.sum(jnp.square(x - recon))
    return (recon_err + noise_term(ws, c, mm)) / (2 * x.shape[0]) + gamma / 2 * weight_norm(ws)


def _a_times(w: Array, sigma: Array, c: Array, mm: MatMul) -> Array:
    """w (Sigma + C), each term in its cheapest representation."""
    return times(w, sigma, mm) + times(w, c, mm)


def _sym_form(s: Array, sigma: Array, c: Array, mm: MatMul) -> Array:
    """S (Sigma + C) S^T."""
    return mm(_a_times(s, sigma, c, mm), s.T)


def _as_matrix(a: Array, d: int) -> Array:
    if a.ndim == 0:
        return a * jnp.eye(d, dtype=a.dtype)
    return jnp.diag(a) if a.ndim == 1 else a


def rhs(ws: Factors, sigma, c=0.0, *, ng=0.0, mm: MatMul, form: str = "gram") -> tuple[Array, ...]:
    """tau dW_l/dt = -n dL/dW_l for every factor (module docstring); ``ng`` = n * gamma.

    With ``form="gram_t"`` the state is (W_1, W_2^T) and so is the result.
    """
    sigma, c = jnp.asarray(sigma), jnp.asarray(c)
    ws = tuple(ws)
    if form == "gram_t":
        u1, u2 = ws
        e1 = _a_times(u1, sigma, c, mm)  # W_1 A
        g = mm(u2, u2.T)  # W_2^T W_2
        k = mm(e1, u1.T)  # W_1 A W_1^T
        return (times(u2, sigma, mm) - mm(g, e1) - ng * u1,
                times(u1, sigma, mm) - mm(k, u2) - ng * u2)
    # S_l = W_{l-1} ... W_1 and Q_l = W_L ... W_{l+1}; None stands for the identity.
    prefixes: list[Array | None] = [None]
    for w in ws[:-1]:
        prefixes.append(w if prefixes[-1] is None else mm(w, prefixes[-1]))
    suffixes: list[Array | None] = [None]
    for w in ws[:0:-1]:
        suffixes.append(w if suffixes[-1] is None else mm(suffixes[-1], w))
    suffixes = suffixes[::-1]
    if form == "square":
        d = ws[-1].shape[0]
        w_full = mm(ws[-1], prefixes[-1])
        m = _as_matrix(sigma, d) - _a_times(w_full, sigma, c, mm)  # M = Sigma - W A
        out = []
        for w, s, q in zip(ws, prefixes, suffixes, strict=True):
            g = m if q is None else mm(q.T, m)
            g = g if s is None else mm(g, s.T)
            out.append(g - ng * w)
        return tuple(out)
    if form != "gram":
        raise ValueError(f"form must be one of {FORMS}; got {form!r}")
    out = []
    for w, s, q in zip(ws, prefixes, suffixes, strict=True):
        if s is None:  # first factor: Q^T Sigma - (Q^T Q) W_1 A
            drive = times(q.T, sigma, mm)
            right = _a_times(w, sigma, c, mm)
        elif q is None:  # last factor: Sigma S^T - W_L (S A S^T)
            drive = times(s, sigma, mm).T
            right = mm(w, _sym_form(s, sigma, c, mm))
        else:
            drive = mm(times(q.T, sigma, mm), s.T)
            right = mm(w, _sym_form(s, sigma, c, mm))
        left = right if q is None else mm(mm(q.T, q), right)
        out.append(drive - left - ng * w)
    return tuple(out)


def grad(ws: Factors, sigma, c=0.0, *, n=1.0, gamma=0.0, mm: MatMul, form: str = "gram") -> tuple[Array, ...]:
    """dL/dW_l for every factor, in closed form (equal to ``jax.grad`` of :func:`loss`)."""
    return tuple(-d / n for d in rhs(ws, sigma, c, ng=n * gamma, mm=mm, form=form))


def gd_step(ws: Factors, sigma, c=0.0, *, n=1.0, gamma=0.0, alpha, mm: MatMul,
            form: str = "gram") -> tuple[Array, ...]:
    """One epoch of full-batch gradient descent: W_l <- W_l + (alpha / n) tau dW_l/dt."""
    inv_tau = alpha / n
    return tuple(w + inv_tau * d for w, d in zip(ws, rhs(ws, sigma, c, ng=n * gamma, mm=mm, form=form),
                                                   strict=True))


def observe(ws: Factors, lam, c=0.0, *, n=1.0, gamma=0.0, mm: MatMul):
    """(mapping (D,), singular values, weight norm, loss) of an eigenbasis state (Sigma = diag(lam))."""
    return (mapping(ws, mm), svdvals(ws, mm), weight_norm(ws),
            loss(ws, lam, c, n=n, gamma=gamma, mm=mm))

