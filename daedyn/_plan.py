"""``daedyn.plan``: what a linear-DAE training run will learn, from the data's spectrum alone, before
it runs (private module; ``daedyn.plan`` is :func:`plan`, exposed lazily by ``daedyn/__init__.py``).

Everything here is a closed form of the per-direction dynamics (docs/workflow.md, "Plan a run"):

- **Stability limit.** Gradient descent with rate alpha on direction j settles at its fixed point
  only while alpha h_j < 2, h_j the largest eigenvalue of the Hessian of the per-sample loss there
  (supplement D). At depth 2 that is :func:`daedyn._linear.max_hessian_eigenvalue`. At depth L, with
  every factor at u = w*^(1/L) and k = lam, m = lam + eps, the Hessian of
  L(w_1..w_L) = [lam (1 - P)^2 + eps P^2] / (2 n) + (gamma / 2) sum_l w_l^2, P = prod_l w_l, is
  (u^(2L-2) m / n - gamma) 1 1^T + 2 gamma I (the fixed-point condition u^(L-2) (m w* - k) = -n gamma
  turns the off-diagonal terms into that form): eigenvalues L (w*^(2-2/L) m / n - gamma) + 2 gamma
  along 1 and 2 gamma across it. At a fixed point w* = 0 it is gamma I for L >= 3. Depth 2 is the
  same formula. ``alpha_max`` = min_j 2 / h_j over the K = min(H, D) directions a network of width H
  learns (the directions the training stability check looks at).
- **Learning time.** :func:`daedyn.theory.learning_time` of the balanced start w0 (any depth): the
  epoch at which direction j reaches ``fraction`` of its fixed point under the flow with
  tau = N / alpha; at depth 2 stretched for gradient descent (one step per epoch): with
  x = alpha (lam - n gamma) / N and y = w / w*, a step multiplies y by (1 + x (1 - y))^2 where an
  epoch of the flow multiplies it by about e^(2 x (1 - y)), so the time is the integral of
  d(log y) / (2 log(1 + x (1 - y))) instead of d(log y) / (2 x (1 - y)) (about x / log(1 + x) times
  the flow's for a small start). At depth L >= 3 a small start grows polynomially, at a per-step
  rate far below x, and the flow's time is kept. The default w0 is
  the mean of :func:`daedyn.train.initial_w0` over random starts of standard deviation
  ``init_scale`` (``train``'s default 1e-4): H s^2 / 2 at depth 2 (|u_j + v_j|^2 / 4,
  u_j + v_j ~ N(0, 2 s^2 I_H)); sqrt(2 / pi) s^L (sqrt(2) Gamma((H + 1) / 2) / Gamma(H / 2))^(L - 1) at
  depth L >= 3 (|W_jj| of a product of L Gaussian factors: a Gaussian of variance s^2 |z|^2, |z|^2 a
  product of L - 1 scaled chi-square(H) variables).
- **Suggestions.** alpha = alpha_max / 2; epochs = the epoch by which 90% of the K directions that
  can be learned (finite learning time) are learned at that alpha (the flow's times scale as
  tau = N / alpha; then the same stretch).
- **Crosscheck.** :func:`daedyn.crosscheck.crosscheck` compares the closed form (a flow) with gradient
  descent against :class:`daedyn.crosscheck.Tolerances`. From a small start, gradient descent on a
  direction grows by (1 + x)^2 per epoch where the flow grows by e^(2x), x = alpha (lam - n gamma) / N,
  so it reaches any level later by the fraction r = x / log(1 + x) - 1 of the flow's time; over the
  rise, a logistic of rate 2x, that delay d = r t_half gives the mapping difference
  w* tanh(x d / 2) at most and a mean square of w*^2 (D coth(D / 2) - 2) / (2 x T) over T epochs
  (D = 2 x d). The verdict is these against the tolerances (and alpha < alpha_max): the
  crosscheck of a decoupled start (``init="orthogonal"``). From a random start (crosscheck's
  default) a direction learned after others grows only in the part of the hidden space they left
  (a smaller effective start, so later than the closed form: about log(H / (H - j)) in log w for
  the j-th), which is not predicted; the reason says how many directions that concerns.
  crosscheck runs depth 2 only.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, NamedTuple

import numpy as np
from jax.typing import ArrayLike

from daedyn import _linear, schedules, theory
from daedyn import noise as noise_lib
from daedyn import spectrum as spectrum_lib
from daedyn._checks import check_int, check_range
from daedyn._corruption import SaltAndPepper

__all__ = ["Plan", "plan"]

#: The rules of the suggestions (stated in every result).
RULES = {
    "alpha_max": "min over the top K = min(H, D) directions of 2 / h_j, h_j the largest Hessian "
                 "eigenvalue of the per-sample loss at direction j's balanced fixed point (supplement D; "
                 "depth L: L (w*^(2-2/L) (lam + eps) / N - gamma) + 2 gamma)",
    "learned": "learning_time <= epochs: the balanced flow from w0 reaches `fraction` of the fixed point",
    "suggested_alpha": "alpha_max / 2",
    "suggested_epochs": "the epoch by which 90% of the K directions with a finite learning time are "
                        "learned at the suggested alpha",
    "crosscheck": "gradient descent's delay behind the closed form (x / log(1 + x) - 1 of the learning "
                  "time, x = alpha (lam - N gamma) / N) within crosscheck's tolerances, and "
                  "alpha < alpha_max",
}
_SUGGESTED_FRACTION = 0.5  # suggested alpha = this times alpha_max
_SUGGESTED_SHARE = 0.9  # suggested epochs: this share of the learnable directions learned
_FEW = 0.1  # the warning: fewer than this share of the K directions learned (or none)


def mean_initial_w0(init_scale: float, hidden: int, depth: int = 2) -> float:
    """The mean of :func:`daedyn.train.initial_w0` (kind "balanced") over random starts of standard
    deviation ``init_scale`` and width ``hidden`` (module docstring)."""
    s, h = float(init_scale), int(hidden)
    if depth == 2:
        return h * s * s / 2
    chi = math.sqrt(2.0) * math.exp(math.lgamma((h + 1) / 2) - math.lgamma(h / 2))  # E sqrt(chi2_H)
    return math.sqrt(2 / math.pi) * s ** depth * chi ** (depth - 1)


def _gd_stretch(alpha, lam, gamma, n, w0, w_star, fraction, depth: int) -> np.ndarray:
    """Gradient descent's learning time over the flow's (module docstring): at depth 2, y = w / w*
    gains 2 log(1 + x (1 - y)) in log per step where the flow gains 2 x (1 - y) per epoch, so the
    ratio of the integrals of d(log y) over each from y0 = w0 / w* to ``fraction`` (Gauss-Legendre
    in log y); 1 at depth L >= 3."""
    x = alpha * (np.asarray(lam, np.float64) - n * gamma) / n
    if depth > 2:
        return np.ones_like(x)
    ok = (x > 0) & (w_star > 0) & (w0 > 0) & (w0 < fraction * w_star)
    lo = np.log(np.where(ok, w0 / np.where(ok, w_star, 1.0), 0.5 * fraction))[:, None]
    hi = math.log(fraction)
    nodes, weights = np.polynomial.legendre.leggauss(64)
    y = np.exp(lo + (hi - lo) * (nodes + 1) / 2)  # (K, 64) nodes in log y
    z = np.where(ok, x, 1.0)[:, None] * (1 - y)
    ratio = np.sum(weights / np.log1p(z), axis=1) / np.sum(weights / z, axis=1)
    return np.where(ok, ratio, 1.0)


def _share_learned(times) -> int | None:
    """The epoch by which 90% of the directions with a finite learning time are learned (None: none)."""
    finite = np.sort(np.asarray(times)[np.isfinite(times)])
    if not finite.size:
        return None
    return max(1, math.ceil(finite[math.ceil(_SUGGESTED_SHARE * finite.size) - 1]))


def _curvature(lam, eps, gamma, n, w_star, depth: int) -> np.ndarray:
    """h_j: the largest Hessian eigenvalue of the per-sample loss at the balanced fixed point."""
    if depth == 2:
        return _linear.max_hessian_eigenvalue(lam, eps, gamma, n)
    m = (lam + eps) / n
    along = depth * (np.power(w_star, 2 - 2 / depth) * m - gamma) + 2 * gamma
    return np.where(w_star > 0, np.maximum(along, 2 * gamma), gamma)


def _no_schedule(name: str, x) -> None:
    schedules.reject_schedule(name, x, "daedyn.plan: closed forms of constant rates")


class Plan(NamedTuple):
    """What a run will learn, predicted from the spectrum (:func:`plan`).

    Attributes:
      eigvals: (K,) lam of the K = min(H, D) top directions (descending).
      eps: (K,) each direction's noise level eps_j (the diagonal of a corruption's term).
      fixed_point: (K,) w*, the mapping each direction approaches.
      w0: (K,) the balanced start used.
      learning_time: (K,) epochs for gradient descent to reach ``fraction`` of w* (inf: never
        learned): the flow's closed form, stretched at depth 2 by gradient descent's slower growth.
      learned: (K,) learning_time <= epochs.
      alpha_limit: (K,) 2 / h_j, the largest stable rate of each direction (inf where h_j = 0).
      alpha_max: the stability limit, min of ``alpha_limit``.
      directions_learned: how many of the K directions are learned by ``epochs``.
      suggested_alpha: alpha_max / 2 (None when alpha_max is inf).
      suggested_epochs: the epoch by which 90% of the learnable directions are learned at
        ``suggested_alpha`` (None when none can be learned).
      crosscheck: True / False: :func:`daedyn.crosscheck.crosscheck` is expected to agree / disagree;
        None at depth >= 3 (crosscheck runs depth 2).
      crosscheck_reason: one line saying why.
      settings: the configuration (plain numbers and strings) and the rules used (``RULES``).
    """

    eigvals: np.ndarray
    eps: np.ndarray
    fixed_point: np.ndarray
    w0: np.ndarray
    learning_time: np.ndarray
    learned: np.ndarray
    alpha_limit: np.ndarray
    alpha_max: float
    directions_learned: int
    suggested_alpha: float | None
    suggested_epochs: int | None
    crosscheck: bool | None
    crosscheck_reason: str
    settings: dict[str, Any]

    @property
    def warning(self) -> str | None:
        """One line when the run will learn almost nothing (fewer than 10% of the K directions, or
        none, by ``epochs``), else None. Stability is not part of it (``train`` warns about that)."""
        k, m, s = len(self.eigvals), self.directions_learned, self.settings
        if k == 0 or (m > 0 and m >= _FEW * k):
            return None
        text = (f"the plan predicts that {m} of the {k} directions reach {s['fraction']:g} of their "
                f"fixed point by epoch {s['epochs']} (alpha = {s['alpha']:g})")
        if self.suggested_epochs is not None:
            at_alpha = _share_learned(self.learning_time)
            text += (f"; 90% of the learnable ones need about {at_alpha} epochs at this alpha, or "
                     f"{self.suggested_epochs} at alpha = {self.suggested_alpha:.3g} (daedyn plan)")
        else:
            text += ("; none can be learned (fixed points 0 where lam <= N gamma, or at depth >= 3 a start "
                     "below the learning threshold: lower gamma or raise init_scale)")
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: lists per direction (inf and NaN as None), the scalars, the settings."""
        clean = lambda a: [None if not np.isfinite(v) else float(v) for v in np.ravel(a)]
        finite = lambda v: None if v is None or not np.isfinite(v) else float(v)
        return {
            "alpha_max": finite(self.alpha_max), "directions_learned": int(self.directions_learned),
            "directions": int(len(self.eigvals)), "learning_time": clean(self.learning_time),
            "suggested_alpha": finite(self.suggested_alpha), "suggested_epochs": self.suggested_epochs,
            "crosscheck": self.crosscheck, "crosscheck_reason": self.crosscheck_reason,
            "warning": self.warning, "eigvals": clean(self.eigvals), "eps": clean(self.eps),
            "fixed_point": clean(self.fixed_point), "w0": clean(self.w0),
            "learned": [bool(v) for v in self.learned], "alpha_limit": clean(self.alpha_limit),
            "settings": self.settings,
        }

    def to_xarray(self):
        """An ``xarray.Dataset``: ``learning_time``, ``fixed_point``, ``w0``, ``eps``, ``learned`` and
        ``alpha_limit`` over ``direction`` (a coordinate 0 .. K-1, with ``lam`` along it), the
        scalars ``alpha_max``, ``directions_learned``, ``suggested_alpha`` and ``suggested_epochs``
        (NaN / -1 where None) as 0-d variables; attributes: the crosscheck expectation ("agree",
        "disagree" or "not applicable") and its reason, the warning, the settings (JSON text).

        Raises:
          ImportError: xarray (the ``sweep`` extra) is not installed.
        """
        from daedyn._xarray import dataset

        nan = lambda v: np.nan if v is None else float(v)
        fields = {name: (np.asarray(getattr(self, name)), ("direction",))
                  for name in ("learning_time", "fixed_point", "w0", "eps", "learned", "alpha_limit")}
        fields.update(alpha_max=(np.asarray(float(self.alpha_max)), ()),
                      directions_learned=(np.asarray(int(self.directions_learned)), ()),
                      suggested_alpha=(np.asarray(nan(self.suggested_alpha)), ()),
                      suggested_epochs=(np.asarray(-1 if self.suggested_epochs is None
                                                   else int(self.suggested_epochs)), ()))
        k = len(self.eigvals)
        verdict = {True: "agree", False: "disagree", None: "not applicable"}[self.crosscheck]
        attrs = {"crosscheck": verdict, "crosscheck_reason": self.crosscheck_reason,
                 "warning": self.warning or "", "settings": json.dumps(self.settings, default=str)}
        coords = {"direction": np.arange(k), "lam": ("direction", np.asarray(self.eigvals))}
        return dataset(fields, coords=coords, attrs=attrs, what="Plan.to_xarray")

    def __str__(self) -> str:
        s = self.settings
        k = len(self.eigvals)
        where = f"{s['name']}: " if s.get("name") else ""
        eps = s["eps"] if isinstance(s["eps"], str) else f"{s['eps']:g}"
        lines = [f"{where}N = {s['n']:g}, D = {s['d']}, H = {s['hidden']}, depth {s['depth']}, eps = {eps}, "
                 f"gamma = {s['gamma']:g}, alpha = {s['alpha']:g}, {s['epochs']} epochs, "
                 f"w0 = {s['w0']}"]
        ratio = s["alpha"] / self.alpha_max if np.isfinite(self.alpha_max) else 0.0
        state = "stable" if ratio < 1 else "UNSTABLE: gradient descent cannot settle"
        lines.append(f"stability: alpha_max = {self.alpha_max:.4g} (alpha / alpha_max = {ratio:.3g}, "
                     f"{state})")
        lines.append(f"learned by epoch {s['epochs']}: {self.directions_learned} of {k} directions "
                     f"(reaching {s['fraction']:g} of their fixed point)")
        rows = list(range(k)) if k <= 16 else [*range(8), None, *range(k - 4, k)]
        head = f"{'j':>4} {'lam_j':>11} {'eps_j':>9} {'w*':>7} {'t_learn':>10} {'2/h_j':>10}  learned"
        lines.append(head)
        for j in rows:
            if j is None:
                lines.append(f"{'...':>4}")
                continue
            t = self.learning_time[j]
            lines.append(f"{j:>4} {self.eigvals[j]:>11.5g} {self.eps[j]:>9.3g} {self.fixed_point[j]:>7.4f} "
                         f"{(f'{t:.4g}' if np.isfinite(t) else 'never'):>10} {self.alpha_limit[j]:>10.4g}  "
                         f"{'yes' if self.learned[j] else 'no'}")
        if self.suggested_alpha is not None:
            ep = ("no direction can be learned" if self.suggested_epochs is None
                  else f"epochs = {self.suggested_epochs}")
            lines.append(f"suggested: alpha = {self.suggested_alpha:.4g} (alpha_max / 2), {ep} "
                         "(90% of the learnable directions learned)")
        verdict = {True: "expected to agree", False: "expected to disagree", None: "not applicable"}
        lines.append(f"crosscheck: {verdict[self.crosscheck]}: {self.crosscheck_reason}")
        if self.warning:
            lines.append(f"warning: {self.warning}")
        return "\n".join(lines)


def _source(x, eigvals, n, spectrum):
    """(lam (D,) float64 descending, N, Spectrum or None, name) of the one input given."""
    given = [v is not None for v in (x, eigvals, spectrum)]
    if sum(given) != 1:
        raise ValueError("give exactly one of x (data, a dataset name or a .npy path), eigvals (with n) "
                         "or spectrum")
    from daedyn import data

    name = None
    if isinstance(x, str | os.PathLike):
        x, _ = data.load_dataset(x, n=n)
    if isinstance(x, data.Dataset):  # as train takes it
        x, name = x.x, x.name
    if x is not None:
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
            raise ValueError(f"x must be a (N, D) array of samples; got shape {x.shape}")
        spectrum = spectrum_lib.compute_spectrum(x)
    if spectrum is not None:
        if not isinstance(spectrum, spectrum_lib.Spectrum):
            raise ValueError(f"spectrum must be a daedyn.spectrum.Spectrum; got {type(spectrum).__name__}")
        lam = np.asarray(spectrum.eigvals, np.float64)
        return np.maximum(lam, 0.0), int(spectrum.n), spectrum, name  # rounding below 0: the flat directions
    lam = np.asarray(eigvals, np.float64)
    if lam.ndim != 1 or lam.size < 1:
        raise ValueError(f"eigvals must be a non-empty 1-D list of eigenvalues of Sigma; got shape "
                         f"{lam.shape}")
    check_range("eigvals", lam, 0.0)
    if n is None:
        raise ValueError("eigvals needs n, the number of samples N they are summed over")
    check_range("n", n, 0.0, lo_open=True)
    return np.sort(lam)[::-1], float(n), None, name


def _noise_eps(noise, eps, spec, n, d: int) -> tuple[np.ndarray, Any]:
    """(eps_j (D,), its description) of ``eps`` or of a corruption value ``noise``."""
    _no_schedule("eps", eps)
    check_range("eps", eps, 0.0)
    if noise is None:
        e = np.asarray(eps, np.float64)
        if e.ndim > 1 or (e.ndim == 1 and e.shape[0] != d):
            raise ValueError(f"eps must be one number or one per direction ({d},); got shape {e.shape}")
        return np.broadcast_to(e, (d,)), float(e) if e.ndim == 0 else "per direction"
    if np.any(np.asarray(eps) != 0):
        raise ValueError("give eps or noise, not both (a noise value's eps is n times its variance)")
    if getattr(noise, "rescale", True) is False:
        raise ValueError("noise: the raw mask (rescale=False) trains W' = (1 - p) W; the plan's closed forms "
                         "take inverted dropout (rescale=True)")
    if isinstance(noise, noise_lib.Noise):
        c = noise.marginal_term(n=n)
    elif isinstance(noise, SaltAndPepper):
        c = noise.marginal_term()  # refused, naming why
    elif spec is None:
        raise ValueError(f"noise {type(noise).__name__}: its per-direction eps_j needs the eigenvectors; "
                         "give x (data) or a spectrum, not eigvals")
    else:
        c = noise.marginal_term(spec)
    if schedules.is_schedule(c):
        raise ValueError("noise: a scheduled corruption has no constant-rate plan; give its value at one "
                         "time")
    c = np.asarray(theory.diagonal_eps(c, c_dims=np.ndim(c)), np.float64)
    if c.ndim > 1:
        raise ValueError(f"noise must be one corruption (no batch of them); got eps_j of shape {c.shape}")
    return np.broadcast_to(c, (d,)), repr(noise)


def _crosscheck_expectation(lam, eps, gamma, n, w_star, w0, alpha, limit, epochs, depth):
    """(expected verdict, reason) of :func:`daedyn.crosscheck.crosscheck` (module docstring)."""
    if depth > 2:
        return None, "crosscheck runs depth 2 only"
    from daedyn.crosscheck import Tolerances

    tol = Tolerances()
    j = int(np.argmin(limit))
    if not alpha < limit[j]:
        return False, (f"alpha = {alpha:g} >= alpha_max = {limit[j]:.4g}: gradient descent does not settle "
                       f"(direction {j}, alpha lam / N = {alpha * lam[j] / n:.3g})")
    checked = w_star >= tol.min_fixed_point
    if not checked.any():
        return True, f"no direction has w* >= {tol.min_fixed_point:g} (nothing to compare)"
    half = np.asarray(theory.learning_time(0.5, lam, eps, gamma, w0=w0, tau=n / alpha, n=n), np.float64)
    x = alpha * (lam - n * gamma) / n
    xs = np.where(x > 0, x, 1.0)
    r = np.where(x > 0, xs / np.log1p(xs) - 1.0, 0.0)  # GD's relative delay
    rises = checked & np.isfinite(half) & (half <= epochs)
    delay = np.where(rises, r * np.where(np.isfinite(half), half, 0.0), 0.0)
    big = 2 * xs * delay  # the shift of the logistic's argument
    quad = np.where(big > 1e-3, big / np.tanh(np.maximum(big, 1e-3) / 2) - 2, big * big / 6)
    max_diff = np.where(rises, w_star * np.tanh(big / 4), 0.0)
    rmse = np.where(rises, w_star * np.sqrt(np.maximum(quad, 0.0) / (2 * xs * epochs)), 0.0)
    late = rises & (half * (1 + r) > epochs)  # learned by the closed form only
    time_rel = np.where(late, np.inf, np.where(rises, r, 0.0))
    worst = []
    for q, val, limit in (("max difference", max_diff, tol.max_diff), ("rmse", rmse, tol.rmse),
                          ("learning-time offset", time_rel, tol.time_rel)):
        j = int(np.argmax(val))
        worst.append((q, float(val[j]), limit, j))
    bad = [(q, v, lim, j) for q, v, lim, j in worst if not v <= lim]
    if bad:
        q, v, lim, j = max(bad, key=lambda b: b[1] / b[2])
        what = "reached by the closed form only" if not np.isfinite(v) else f"{v:.3g} > {lim:g}"
        return False, (f"predicted closed form vs gradient descent {q} {what} at direction {j} "
                       f"(alpha lam / N = {alpha * lam[j] / n:.3g}); lower alpha")
    summary = ", ".join(f"{q} {v:.2g} <= {lim:g}" for q, v, lim, _ in worst)
    text = f"predicted closed form vs gradient descent: {summary} (for crosscheck --init orthogonal"
    later = int(np.sum(rises[1:]))
    if later:  # random starts: each later direction grows in the hidden space the earlier ones left
        text += (f"; from its default random start the {later} direction(s) after the first that rise "
                 "within the run are coupled to the earlier ones and learned later than the closed form "
                 "says: expect disagreement there")
    return True, text + ")"


def plan(x: ArrayLike | str | os.PathLike | None = None, *, eigvals: ArrayLike | None = None,
         n: float | None = None, spectrum: spectrum_lib.Spectrum | None = None, hidden: int, alpha: float,
         epochs: int, depth: int = 2, eps: ArrayLike = 0.0, noise: Any = None, gamma: float = 0.0,
         init_scale: float = 1e-4, w0: ArrayLike | None = None, fraction: float = 0.9) -> Plan:
    """Plan a linear-DAE training run from the spectrum alone: stability limit, learning times,
    directions learned, suggestions and the crosscheck's expected verdict (module docstring).

    Args:
      x: data (N, D) (rows are samples), a :class:`daedyn.data.Dataset`, or a dataset name / ``.npy``
        path for :func:`daedyn.data.load_dataset` (``n``: its default draw of n samples); or None
        with ``eigvals`` or ``spectrum``.
      eigvals: a spectrum lam (D,) of Sigma = X^T X, summed over ``n`` samples, instead of data.
      n: N for ``eigvals``; samples to load for a dataset name.
      spectrum: a :class:`daedyn.spectrum.Spectrum` (e.g. the one a run trains with).
      hidden: width H (>= 1); K = min(H, D) directions are planned.
      alpha: learning rate, > 0 (tau = N / alpha; one gradient-descent step per epoch).
      epochs: the run's length T (int >= 1).
      depth: number of weight matrices L (int >= 2), each hidden layer H wide.
      eps: noise level N s^2 (>= 0), one number or one per direction (D,); or
      noise: a corruption value from :mod:`daedyn.noise` (Gaussian, Laplace, inverted masking, a
        covariance; its diagonal eps_j in the eigenbasis).
      gamma: weight decay, >= 0.
      init_scale: standard deviation of the random initial weights (``train``'s default 1e-4): the
        start w0 is the mean of :func:`daedyn.train.initial_w0` over such starts.
      w0: the balanced start per direction instead (a number or (K,); e.g.
        ``train.initial_w0(params, spectrum.eigvecs)[:K]`` for one network).
      fraction: a direction is learned when it reaches this fraction of its fixed point, in (0, 1).
    Returns:
      :class:`Plan`.
    Raises:
      ValueError: naming the argument: none or several of x / eigvals / spectrum, eigvals without n,
        out-of-range or scheduled rates, both eps and noise, a raw mask, salt-and-pepper noise (no
        marginalised form), a corruption with eigvals only.
    Example:
      >>> import daedyn
      >>> p = daedyn.plan(eigvals=[4.0, 2.0, 1.0], n=4, hidden=2, alpha=0.1, epochs=500)
      >>> p.alpha_max, p.directions_learned  # 2 / (2 lam_1 / N) at depth 2
      (1.0, 2)
    """
    lam_all, nn, spec, name = _source(x, eigvals, n, spectrum)
    hidden = check_int("hidden", hidden, 1)
    depth = check_int("depth", depth, 2)
    epochs = check_int("epochs", epochs, 1)
    for label, v in (("alpha", alpha), ("gamma", gamma), ("init_scale", init_scale), ("fraction", fraction)):
        _no_schedule(label, v)
        if np.ndim(v) != 0:
            raise ValueError(f"{label} must be one number; got shape {np.shape(v)}")
    check_range("alpha", alpha, 0.0, lo_open=True)
    check_range("gamma", gamma, 0.0)
    check_range("init_scale", init_scale, 0.0, lo_open=True)
    check_range("fraction", fraction, 0.0, 1.0, lo_open=True, hi_open=True)
    alpha, gamma, fraction = float(alpha), float(gamma), float(fraction)
    d = lam_all.shape[0]
    eps_all, eps_desc = _noise_eps(noise, eps, spec, nn, d)
    k = min(hidden, d)
    lam, eps_k = lam_all[:k], np.asarray(eps_all[:k], np.float64)
    if w0 is None:
        start = np.full((k,), mean_initial_w0(init_scale, hidden, depth))
        w0_desc = f"{start[0]:.3g} (mean of train.initial_w0 at init scale {float(init_scale):g})"
    else:
        _no_schedule("w0", w0)
        check_range("w0", w0, 0.0)
        try:
            start = np.broadcast_to(np.asarray(w0, np.float64), (k,)).copy()
        except ValueError:
            raise ValueError(f"w0 must be one number or one per planned direction ({k},); got shape "
                             f"{np.shape(w0)}") from None
        w0_desc = "given" if np.ndim(w0) else f"{float(w0):.3g} (given)"
    tau = nn / alpha
    w_star = np.asarray(theory.fixed_point(lam, eps_k, gamma, nn, depth=depth), np.float64)
    flow = theory.learning_time(fraction, lam, eps_k, gamma, w0=start, tau=tau, n=nn, depth=depth)
    flow = np.asarray(flow, np.float64)
    times = flow * _gd_stretch(alpha, lam, gamma, nn, start, w_star, fraction, depth)
    h = np.asarray(_curvature(lam, eps_k, gamma, nn, w_star, depth), np.float64)
    with np.errstate(divide="ignore"):
        limit = np.where(h > 0, 2.0 / np.where(h > 0, h, 1.0), np.inf)
    alpha_max = float(np.min(limit))
    learned = times <= epochs
    suggested_alpha = _SUGGESTED_FRACTION * alpha_max if np.isfinite(alpha_max) else None
    suggested_epochs = None
    if suggested_alpha is not None:  # the flow's times scale as N / alpha
        stretch = _gd_stretch(suggested_alpha, lam, gamma, nn, start, w_star, fraction, depth)
        at_suggested = flow * (alpha / suggested_alpha) * stretch
        suggested_epochs = _share_learned(at_suggested)
    verdict, reason = _crosscheck_expectation(lam, eps_k, gamma, nn, w_star, start, alpha, limit, epochs,
                                              depth)
    settings = {"name": name, "source": "eigvals" if spec is None else "spectrum", "n": nn, "d": int(d),
                "hidden": hidden, "depth": depth, "alpha": alpha, "epochs": epochs, "gamma": gamma,
                "eps": eps_desc, "init_scale": float(init_scale), "w0": w0_desc, "fraction": fraction,
                "rules": dict(RULES)}
    return Plan(eigvals=lam, eps=eps_k, fixed_point=w_star, w0=start, learning_time=times, learned=learned,
                alpha_limit=limit, alpha_max=alpha_max, directions_learned=int(learned.sum()),
                suggested_alpha=suggested_alpha, suggested_epochs=suggested_epochs, crosscheck=verdict,
                crosscheck_reason=reason, settings=settings)
