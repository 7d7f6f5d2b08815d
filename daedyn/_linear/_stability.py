"""Can gradient descent settle? The Hessian of the scalar loss at its fixed point (supplement D).

Gradient descent with rate alpha on the per-sample loss of one eigen-direction,

    L(w1, w2) = [lam (1 - w1 w2)^2 + eps (w1 w2)^2] / (2 n) + (gamma / 2) (w1^2 + w2^2),

is the update w <- w + (1/tau) * RHS of Eqs. (2)-(3) with tau = n / alpha (one step = one epoch).
Near a fixed point it converges only while alpha * h_max < 2, where h_max is the largest eigenvalue
of the Hessian of L there. Supplement D gives the Hessian entries (times tau / n):

    d2L/dw1^2 = (lam + eps) w2^2 / n + gamma,   d2L/dw2^2 = (lam + eps) w1^2 / n + gamma,
    d2L/dw1 dw2 = [2 (lam + eps) w1 w2 - lam] / n.

At the balanced fixed point w1 = w2 = sqrt(w*), w* = max(0, (lam - n gamma) / (lam + eps)):

- w* > 0: eigenvalues 2 (lam / n - gamma) and 2 gamma, so h_max = max(2 lam / n - 2 gamma, 2 gamma)
  (2 lam / n whatever eps is, when gamma = 0);
- w* = 0 (lam <= n gamma): the origin, eigenvalues gamma +- lam / n, so h_max = gamma + lam / n.

Without weight decay the flow conserves c0 = w2^2 - w1^2, so a start off the balanced line ends on
the fixed-point manifold w1 w2 = w* with w1^2 + w2^2 = sqrt(c0^2 + 4 w*^2); there the eigenvalues are
0 and (lam + eps)(w1^2 + w2^2) / n. With gamma > 0, c0 decays (tau dc0/dt = -2 n gamma c0) and the
balanced point is the one reached.
"""

from __future__ import annotations

import warnings

import numpy as np

from daedyn._checks import check_broadcastable, check_range, concrete

__all__ = ["UnstableStepWarning", "max_hessian_eigenvalue", "start_hessian_eigenvalue", "check_gd_stability"]


class UnstableStepWarning(RuntimeWarning):
    """Gradient descent with this learning rate cannot settle at the fixed point."""


def max_hessian_eigenvalue(lam, eps=0.0, gamma=0.0, n=1, *, w1=None, w2=None) -> np.ndarray:
    """Largest Hessian eigenvalue of the per-sample scalar loss at the fixed point GD converges to.

    Args:
      lam: eigenvalue(s) of Sigma (a sum over the n samples), >= 0.
      eps: noise level n * s**2, >= 0.
      gamma: weight decay of Eq. (6), >= 0.
      n: number of samples N (1 for the scalar demos of Figure 1), > 0.
      w1, w2: optional starting weights. Where given and gamma = 0, the fixed point reached by the
        flow from that start is used (it conserves w2^2 - w1^2); otherwise the balanced one.
    Returns:
      NumPy float64 array with the broadcast shape of the inputs; alpha must stay below 2 / value.
    Example:
      >>> float(max_hessian_eigenvalue(lam=3.0, eps=5.0))  # 2 lam / n at the balanced point
      6.0
    """
    lam, eps, gamma, n = (np.asarray(v, np.float64) for v in (lam, eps, gamma, n))
    w_star = np.maximum(0.0, (lam - n * gamma) / np.where(lam + eps > 0, lam + eps, 1.0))
    balanced = np.where(w_star > 0, np.maximum(2 * (lam / n - gamma), 2 * gamma), gamma + lam / n)
    if w1 is None or w2 is None:
        return balanced
    w1, w2 = np.asarray(w1, np.float64), np.asarray(w2, np.float64)
    c0 = w2**2 - w1**2
    manifold = (lam + eps) * np.sqrt(c0**2 + 4 * w_star**2) / n
    return np.where(gamma > 0, balanced, np.maximum(manifold, balanced))


def start_hessian_eigenvalue(lam, eps, gamma, n, w1, w2) -> np.ndarray:
    """Largest Hessian eigenvalue of the per-sample scalar loss at the start ``(w1, w2)``.

    The same supplement-D entries as :func:`max_hessian_eigenvalue`, evaluated where gradient descent
    begins: with ``h11 = (lam + eps) w2^2 / n + gamma``, ``h22 = (lam + eps) w1^2 / n + gamma`` and
    ``h12 = (2 (lam + eps) w1 w2 - lam) / n`` it is ``(h11 + h22) / 2 + sqrt(((h11 - h22) / 2)^2 + h12^2)``.
    A first step with ``alpha`` times this above 2 overshoots (e.g. ``eps = 1e12`` from ``w = 1``).

    Example:
      >>> float(start_hessian_eigenvalue(1.0, 0.0, 0.0, 1, 0.0, 0.0))  # the saddle: lam / n
      1.0
    """
    lam, eps, gamma, n, w1, w2 = (np.asarray(v, np.float64) for v in (lam, eps, gamma, n, w1, w2))
    with np.errstate(over="ignore", invalid="ignore"):
        k = (lam + eps) / n
        h11, h22 = k * w2 * w2 + gamma, k * w1 * w1 + gamma
        h12 = 2 * k * w1 * w2 - lam / n
        return 0.5 * (h11 + h22) + np.hypot(0.5 * (h11 - h22), h12)


def check_gd_stability(lam, eps=0.0, gamma=0.0, alpha=0.01, n=1, *, w1=None, w2=None,
                       stacklevel: int = 2):
    """Warn when gradient descent with rate ``alpha`` cannot settle: alpha * h_max >= 2.

    h_max is :func:`max_hessian_eigenvalue` (supplement D's Hessian at the fixed point). The warning
    (:class:`UnstableStepWarning`) names how many settings fail and the worst offending lam and alpha,
    with the largest stable rate there. When the start ``w1, w2`` is given and the fixed point is
    fine, the Hessian at the start is checked too (:func:`start_hessian_eigenvalue`): a run can
    diverge from its first step (``eps = 1e12`` from ``w = 1``) long before it nears a fixed point.
    One warning per call. Traced inputs (under jit/vmap) are not checked.

    Args:
      lam, eps, gamma, n, w1, w2: as for :func:`max_hessian_eigenvalue`; all broadcast.
      alpha: learning rate(s), > 0.
    Returns:
      ``alpha * h_max`` as a NumPy array (stable where < 2; where the start is what fails, the start's
      larger value), or ``None`` when any input is traced.
    Raises:
      ValueError: for negative lam, eps, gamma, non-positive alpha or n, or NaN.
    Example:
      >>> import warnings
      >>> with warnings.catch_warnings(record=True) as caught:
      ...     warnings.simplefilter("always")
      ...     edge = check_gd_stability(lam=300.0, alpha=0.01)  # 0.01 * 2 * 300 = 6 >= 2
      >>> float(edge), caught[0].category.__name__
      (6.0, 'UnstableStepWarning')
    """
    values = dict(lam=lam, eps=eps, gamma=gamma, alpha=alpha, n=n)
    if w1 is not None and w2 is not None:
        values.update(w1=w1, w2=w2)
    conc = {k: concrete(v) for k, v in values.items()}
    if any(v is None for v in conc.values()):
        return None
    check_broadcastable(**conc)
    check_range("lam", conc["lam"], 0.0)
    check_range("eps", conc["eps"], 0.0)
    check_range("gamma", conc["gamma"], 0.0)
    check_range("alpha", conc["alpha"], 0.0, lo_open=True)
    check_range("n", conc["n"], 0.0, lo_open=True)
    h = max_hessian_eigenvalue(conc["lam"], conc["eps"], conc["gamma"], conc["n"],
                               w1=conc.get("w1"), w2=conc.get("w2"))
    edge = np.asarray(conc["alpha"], np.float64) * h
    h = np.broadcast_to(h, edge.shape)
    bad = edge >= 2
    if np.any(bad):
        i = np.unravel_index(np.argmax(np.where(bad, edge, -np.inf)), edge.shape)
        pick = lambda k: float(np.broadcast_to(np.asarray(conc[k], np.float64), edge.shape)[i])
        warnings.warn(
            f"gradient descent cannot settle for {int(bad.sum())} of {bad.size} setting(s): "
            f"alpha * (largest Hessian eigenvalue at the fixed point) >= 2; worst at "
            f"lam={pick('lam'):g}, alpha={pick('alpha'):g} (eps={pick('eps'):g}, gamma={pick('gamma'):g}, "
            f"n={pick('n'):g}): alpha * h_max = {float(edge[i]):.4g}; alpha < {2 / float(h[i]):.4g} "
            f"would be stable there",
            UnstableStepWarning, stacklevel=stacklevel + 1)
    elif "w1" in conc:
        start = np.asarray(conc["alpha"], np.float64) * start_hessian_eigenvalue(
            conc["lam"], conc["eps"], conc["gamma"], conc["n"], conc["w1"], conc["w2"])
        bad = ~(start < 2)  # an overflowing Hessian (inf, NaN) counts as unstable
        if np.any(bad):
            start = np.broadcast_to(start, bad.shape)
            i = np.unravel_index(np.argmax(np.where(bad, np.nan_to_num(start, nan=np.inf), -np.inf)),
                                 bad.shape)
            pick = lambda k: float(np.broadcast_to(np.asarray(conc[k], np.float64), bad.shape)[i])
            warnings.warn(
                f"gradient descent diverges from its start for {int(bad.sum())} of {bad.size} setting(s): "
                f"alpha * (largest Hessian eigenvalue at the start) >= 2; worst at lam={pick('lam'):g}, "
                f"eps={pick('eps'):g}, alpha={pick('alpha'):g}, w1={pick('w1'):g}, w2={pick('w2'):g} "
                f"(gamma={pick('gamma'):g}, n={pick('n'):g}): alpha * h_start = {float(start[i]):.4g}; "
                f"alpha < {2 * pick('alpha') / float(start[i]):.4g} would take a stable first step",
                UnstableStepWarning, stacklevel=stacklevel + 1)
        return np.maximum(edge, np.where(np.isnan(start), np.inf, start))
    return edge
