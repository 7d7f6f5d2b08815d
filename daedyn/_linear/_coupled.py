"""Can gradient descent settle with a coupled corruption term? The Hessian of the factorised loss.

The scalar check (:mod:`daedyn._linear._stability`) treats every eigen-direction on its own, with
its diagonal eps_j. With a (D, D) term C~ = V^T C V the directions couple, and so do the curvatures.
In the eigenbasis (Sigma = Lam diagonal), with A = Lam + C~ and W = W2 W1 (W1: H x D, W2: D x H),

    L(W1, W2) = 1/(2N) [tr Lam - 2 tr(W Lam) + tr(W A W^T)],   G = dL/dW = (W A - Lam) / N.

Derivation of the Hessian. dL/dW1 = W2^T G and dL/dW2 = G W1^T. Along (D1, D2), dW = D2 W1 + W2 D1
and dG = dW A / N, so the Hessian-vector product is

    H[D1, D2] = (D2^T G + W2^T dG,  dG W1^T + G D1^T),

and the quadratic form is  (1/N) tr(dW A dW^T) + 2 tr(G^T D2 D1).  At a full-rank fixed point (H = D)
G = 0 and W* = Lam A^(-1); writing the form as ||L(D1, D2)||^2 / N with L = dW A^(1/2), the nonzero
Hessian spectrum is that of (A kron P + B kron I) / N, P = W2 W2^T, B = A^(1/2) W1^T W1 A^(1/2). For
a balanced start (W1 W1^T = W2^T W2, kept by the flow without weight decay) P = (W W^T)^(1/2).
For a diagonal A (isotropic or per-direction eps_j), P = diag(w), B = diag(lam), and

    h_max = max_{i,j} [(lam_i + eps_i) w_j + lam_i] / N,   w_j = lam_j / (lam_j + eps_j):

i = j gives the scalar check's 2 lam_i / N, and i != j the cross curvature of a hidden unit that
carries direction j reading input direction i. For isotropic noise the maximum is 2 lam_0 / N (the
scalar check is exact); with a large eps_i on a direction i that the data barely use, the cross
term (lam_i + eps_i) w_0 exceeds it and gradient descent diverges where the scalar check is silent.

With H < D the network learns (approximately, exactly for a diagonal C~) the top H directions; the
fixed point used here is W* = E_H Lam_H A_HH^(-1) E_H^T (the optimum with row and column space in
the top-H subspace; the coupled flow leaks ~1e-3 outside it, docs/corruption.md), factored in
balance (W*_H = U S V^T, W2 = U S^(1/2), W1 = S^(1/2) V^T), and its largest Hessian eigenvalue is
found by power iteration on the product above (the Hessian there is positive semi-definite):
O(H D^2) per product, no D^2 x D^2 matrix. Weight decay lowers the curvature at the fixed point
(scalar case: 2 (lam / N - gamma)); the value here is the gamma = 0 one, an overestimate by at most
about 2 gamma.
"""

from __future__ import annotations

import warnings

import numpy as np

from daedyn._linear._stability import UnstableStepWarning

__all__ = ["coupled_fixed_point", "coupled_hessian_eigenvalue", "learned_directions",
           "check_coupled_stability"]


def coupled_fixed_point(lam, c, hidden: int) -> tuple[np.ndarray, np.ndarray]:
    """Balanced factors (W1 (H, D), W2 (D, H)) of W* = E_H Lam_H (Lam_H + C~_HH)^(-1) E_H^T (float64)."""
    lam = np.asarray(lam, np.float64)
    c = np.asarray(c, np.float64)
    d = lam.shape[-1]
    h = int(min(hidden, d))
    a_hh = np.diag(lam[:h]) + c[:h, :h]
    # Lam_H A_HH^(-1); directions with lam + c below 1e-10 of the top (pixels that are always 0) have no
    # fixed point to speak of and are left out (a pseudo-inverse), not inverted into noise
    w_h = lam[:h, None] * np.linalg.pinv(a_hh, rcond=1e-10, hermitian=True)
    u, s, vt = np.linalg.svd(w_h)
    root = np.sqrt(np.maximum(s, 0.0))
    w1 = np.zeros((h, d))
    w2 = np.zeros((d, h))
    w1[:, :h] = root[:, None] * vt
    w2[:h, :] = u * root[None, :]
    return w1, w2


def _hvp_fn(lam, c, n, w1, w2):
    """The Hessian-vector product of the module docstring at (W1, W2), per sample (1/N scaling)."""
    a = np.diag(lam) + c
    k = w1 @ a  # W1 A (H, D)
    m = k @ w1.T  # W1 A W1^T (H, H)
    q = w2.T @ w2  # W2^T W2 (H, H)
    g = (w2 @ k - np.diag(lam)) / n  # G (D, D)

    def hvp(d1, d2):
        h1 = d2.T @ g + (w2.T @ d2 @ k + q @ d1 @ a) / n
        h2 = g @ d1.T + (d2 @ m + w2 @ (d1 @ k.T)) / n
        return h1, h2

    return hvp


def coupled_hessian_eigenvalue(lam, c, n, *, hidden: int, steps: int = 24, w1=None, w2=None) -> float:
    """Largest Hessian eigenvalue of the per-sample loss with a (D, D) corruption term, at its fixed point.

    Lanczos with full reorthogonalisation (``steps`` products, from a fixed random start) on the
    Hessian-vector product of the module docstring; the extreme Ritz value converges fast (measured:
    1e-12 relative to ``jax.hessian`` with 24 steps on small problems).

    Args:
      lam: (D,) eigenvalues of Sigma (descending), >= 0.
      c: (D, D) corruption term in the eigenbasis, V^T C V (symmetric positive semi-definite).
      n: number of samples N, > 0.
      hidden: H, the hidden units.
      steps: Lanczos steps (at most the number of parameters 2 H D).
      w1, w2: evaluate at these factors instead of :func:`coupled_fixed_point` (tests).
    Returns:
      h_max (float); gradient descent with rate alpha settles there only while alpha * h_max < 2.
    Example:
      >>> lam, n = np.array([3.0, 1.0]), 1.0
      >>> round(coupled_hessian_eigenvalue(lam, 0.5 * np.eye(2), n, hidden=2), 6)  # isotropic: 2 lam_0 / N
      6.0
    """
    lam = np.asarray(lam, np.float64)
    c = np.asarray(c, np.float64)
    if w1 is None or w2 is None:
        w1, w2 = coupled_fixed_point(lam, c, hidden)
    w1, w2 = np.asarray(w1, np.float64), np.asarray(w2, np.float64)
    hvp = _hvp_fn(lam, c, float(n), w1, w2)
    size1 = w1.size
    op = lambda v: np.concatenate([a.ravel() for a in hvp(v[:size1].reshape(w1.shape),
                                                          v[size1:].reshape(w2.shape))])
    total = size1 + w2.size
    m = int(min(steps, total))
    basis = np.zeros((m, total))
    alphas, betas = [], []
    v = np.random.default_rng(0).standard_normal(total)
    v /= np.linalg.norm(v)
    for k in range(m):
        basis[k] = v
        w = op(v)
        a = float(v @ w)
        alphas.append(a)
        for _ in range(2):  # full reorthogonalisation, twice (one classical pass loses orthogonality)
            w = w - basis[: k + 1].T @ (basis[: k + 1] @ w)
        b = float(np.linalg.norm(w))
        if k == m - 1 or b <= 1e-14 * max(abs(a), 1e-300):
            break
        betas.append(b)
        v = w / b
    t = np.diag(alphas) + np.diag(betas[: len(alphas) - 1], 1) + np.diag(betas[: len(alphas) - 1], -1)
    return float(np.linalg.eigvalsh(t)[-1])


def learned_directions(lam, alpha, n, epochs, hidden: int) -> int:
    """How many leading directions a run of ``epochs`` GD steps learns: those with alpha T lam_j / N >= 1
    (at least one time constant tau / lam_j), at most H. Directions beyond never reach their fixed
    point in the run, and with a coupled term an H = D fixed point can put large weights on them
    (the optimal denoiser uses nearly silent directions to cancel correlated noise): its curvature
    belongs to runs millions of epochs long."""
    lam = np.asarray(lam, np.float64)
    if epochs is None:
        return int(min(hidden, lam.shape[-1]))
    k = int(np.sum(alpha * float(epochs) * lam / n >= 1.0))
    return int(max(1, min(hidden, k)))


def check_coupled_stability(lam, c, alpha, n, *, hidden: int, epochs=None, stacklevel: int = 2):
    """Warn (:class:`UnstableStepWarning`) when alpha * h_max >= 2 for a coupled term; return alpha * h_max.

    ``c`` is (..., D, D) and ``alpha`` and ``n`` broadcast against its batch shape; one Lanczos run
    per distinct (batch element, learned directions) (a check on concrete values, not a hot path).
    With ``epochs`` the fixed point is that of the directions the run learns
    (:func:`learned_directions`), else of the top H.
    """
    lam = np.asarray(lam, np.float64)
    c = np.asarray(c, np.float64)
    batch = np.broadcast_shapes(c.shape[:-2], np.shape(alpha), np.shape(n))
    c_b = np.broadcast_to(c, batch + c.shape[-2:]).reshape((-1,) + c.shape[-2:])
    n_b = np.broadcast_to(np.asarray(n, np.float64), batch).reshape(-1)
    a_b = np.broadcast_to(np.asarray(alpha, np.float64), batch).reshape(-1)
    cache: dict = {}
    edge = np.empty(a_b.shape)
    for i in range(a_b.size):
        h = learned_directions(lam, a_b[i], n_b[i], epochs, hidden)
        key = (0 if c.ndim == 2 else i, float(n_b[i]), h)
        if key not in cache:
            cache[key] = coupled_hessian_eigenvalue(lam, c_b[i], n_b[i], hidden=h)
        edge[i] = a_b[i] * cache[key]
    edge = edge.reshape(batch)
    bad = edge >= 2
    if np.any(bad):
        worst = int(np.argmax(np.where(bad, edge, -np.inf).reshape(-1)))
        h = edge.reshape(-1)[worst] / a_b[worst]
        warnings.warn(
            f"gradient descent cannot settle at the balanced fixed point for {int(bad.sum())} of {bad.size} "
            f"setting(s) with the coupled corruption term: alpha * (largest Hessian eigenvalue of the "
            f"coupled loss there) >= 2; worst at alpha={a_b[worst]:g}: alpha * h_max = "
            f"{edge.reshape(-1)[worst]:.4g} (per direction, 2 alpha lam_0 / N = "
            f"{2 * a_b[worst] * lam[0] / n_b[worst]:.4g}); the run diverges or drifts to an unbalanced "
            f"factorisation of the same map; alpha < {2 / h:.4g} is stable there",
            UnstableStepWarning, stacklevel=stacklevel + 1)
    return edge
