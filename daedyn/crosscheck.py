"""One configuration run four ways, to see whether the theory can be trusted on it.

:func:`crosscheck` takes data (or a spectrum) and one setting (eps, gamma, alpha, hidden, epochs,
initialisation) and computes the per-direction mapping diag(V^T W2 W1 V) four ways:

1. ``closed``: the closed form :func:`daedyn.theory.small_init_trajectory` (continuous flow) from
   each direction's balanced-equivalent start w0_j (:func:`daedyn.train.initial_w0`);
2. ``scalar``: the scalar gradient-descent recursion :func:`daedyn.dynamics.scalar_gd` per
   direction from the same balanced start (one step per epoch);
3. ``matrix``: full-matrix gradient descent :func:`daedyn.dynamics.matrix_gd` in the eigenbasis of
   Sigma from the network's own initial weights rotated there;
4. ``train``: a real network trained by :func:`daedyn.train.train` (linear, marginalised noise,
   full-batch gradient descent) from the same initial weights.

It returns a per-direction agreement table (max and RMSE differences between every pair of ways,
learning times to ``fraction`` of the fixed point), and a verdict against stated tolerances
(:class:`Tolerances`). Where alpha lam / N is not small the closed form (a flow) and the recursions
part; beyond alpha lam / N = 1 gradient descent no longer converges to w* (a 2-cycle, or
divergence), and the verdict fails.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Literal, NamedTuple

import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax.typing import ArrayLike

from daedyn import data as data_lib
from daedyn import dynamics, models, schedules, theory, train
from daedyn import noise as noise_lib
from daedyn import spectrum as spectrum_lib
from daedyn._checks import check_range

__all__ = ["Tolerances", "CrossCheck", "crosscheck"]

_WAYS = ("closed", "scalar", "matrix", "train")

# Where the per-direction prediction (``scalar``: each direction's balanced-equivalent start iterated by
# gradient descent) was measured against real training from a random start (docs/crosscheck.md,
# "Where the prediction holds"; benchmarks/crosscheck_regimes.py on mnist5k, 1000 images, 1000 epochs):
# worst learning-time error <= 4.8% inside these bounds; outside, up to 27% (init 1e-2), 91% (init
# 0.1), 46% (alpha lam_0 / N = 0.5, direction 14 of 16), 6.7% (H = 4).
_MEASURED_REGIME = {"init_scale": 1e-3, "alpha_lam_over_n": 0.2, "hidden": 16}


def _regime_notes(init: str, init_scale: float, alpha_lam0_over_n: float, hidden: int) -> list[str]:
    """One line per bound of :data:`_MEASURED_REGIME` a random-start run is outside of."""
    if init != "random":  # the decoupled start: the four ways are the same recursion (exact)
        return []
    r, notes = _MEASURED_REGIME, []
    if init_scale > r["init_scale"]:
        notes.append(f"init_scale = {init_scale:g} > {r['init_scale']:g}")
    if alpha_lam0_over_n > r["alpha_lam_over_n"]:
        notes.append(f"alpha lam_0 / N = {alpha_lam0_over_n:.3g} > {r['alpha_lam_over_n']:g}")
    if hidden < r["hidden"]:
        notes.append(f"hidden = {hidden} < {r['hidden']}")
    return notes


class Tolerances(NamedTuple):
    """What "agree" means, for every pair of ways and every checked direction.

    Attributes:
      max_diff: largest |difference| of the mapping over all records (absolute; the mapping is
        between 0 and 1; during the steep rise a small time offset makes a large difference).
      rmse: root-mean-square difference of the mapping over the records.
      time_rel: relative difference of the learning times (a direction that neither way learns
        within the run is not checked on time; one learned by only one of the two fails).
      min_fixed_point: directions whose fixed point w* is below this are reported, not checked.
    """

    max_diff: float = 0.1
    rmse: float = 0.02
    time_rel: float = 0.05
    min_fixed_point: float = 0.05


class CrossCheck(NamedTuple):
    """The four trajectories, their pairwise agreement and the verdict.

    Attributes:
      t: (T,) record times in epochs.
      eigvals: (K,) lam of the compared directions (K = min(H, D)).
      fixed_point: (K,) w* per direction.
      alpha_lam_over_n: (K,) the Euler step alpha lam / N of each direction.
      mapping: way -> (T, K) mapping.
      times: way -> (K,) learning time (NaN: never reached, or not checked).
      pairs: "a-b" -> {"max": (K,), "rmse": (K,), "time_rel": (K,)} differences.
      checked: (K,) bool, directions the verdict looks at.
      verdict: True when every pair agrees within ``tolerances`` on every checked direction.
      failures: one line per failing (pair, quantity), worst direction named.
      tolerances: the :class:`Tolerances` used.
      settings: the configuration (plain numbers), and the warnings raised while running.
    """

    t: np.ndarray
    eigvals: np.ndarray
    fixed_point: np.ndarray
    alpha_lam_over_n: np.ndarray
    mapping: dict[str, np.ndarray]
    times: dict[str, np.ndarray]
    pairs: dict[str, dict[str, np.ndarray]]
    checked: np.ndarray
    verdict: bool
    failures: list[str]
    tolerances: Tolerances
    settings: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (lists; NaN as None)."""
        clean = lambda a: [None if not np.isfinite(v) else float(v) for v in np.ravel(a)]
        return {
            "verdict": "agree" if self.verdict else "disagree", "failures": list(self.failures),
            "tolerances": self.tolerances._asdict(), "settings": self.settings,
            "eigvals": clean(self.eigvals), "fixed_point": clean(self.fixed_point),
            "alpha_lam_over_n": clean(self.alpha_lam_over_n), "checked": self.checked.tolist(),
            "learning_times": {k: clean(v) for k, v in self.times.items()},
            "pairs": {p: {q: clean(v) for q, v in d.items()} for p, d in self.pairs.items()},
        }

    def to_xarray(self):
        """The four ways as an ``xarray.Dataset``: ``mapping`` over (``way``, ``epoch``,
        ``direction``), ``learning_time`` over (``way``, ``direction``), the pairwise differences
        ``diff_max`` / ``diff_rmse`` / ``diff_time_rel`` over (``pair``, ``direction``), and
        ``fixed_point``, ``alpha_lam_over_n`` and ``checked`` over ``direction``. ``direction`` is a
        coordinate (0 .. K-1) with ``lam`` along it; ``way`` and ``pair`` are labelled by name.
        Attributes: the verdict ("agree" / "disagree"), the failures, the tolerances and the settings
        (JSON text).

        Raises:
          ImportError: xarray (the ``sweep`` extra) is not installed.
        """
        import json

        from daedyn._xarray import dataset

        ways, pairs = list(self.mapping), list(self.pairs)
        quantities = list(next(iter(self.pairs.values()))) if pairs else []
        stack = lambda arrays: np.stack([np.asarray(a) for a in arrays])
        fields = {"mapping": (stack(self.mapping[w] for w in ways), ("way", "epoch", "direction")),
                  "learning_time": (stack(self.times[w] for w in ways), ("way", "direction")),
                  "fixed_point": (np.asarray(self.fixed_point), ("direction",)),
                  "alpha_lam_over_n": (np.asarray(self.alpha_lam_over_n), ("direction",)),
                  "checked": (np.asarray(self.checked, bool), ("direction",))}
        for q in quantities:
            fields[f"diff_{q}"] = (stack(self.pairs[p][q] for p in pairs), ("pair", "direction"))
        k = np.shape(self.eigvals)[-1]
        coords = {"way": np.asarray(ways), "pair": np.asarray(pairs), "direction": np.arange(k),
                  "lam": ("direction", np.asarray(self.eigvals))}
        attrs = {"verdict": "agree" if self.verdict else "disagree",
                 "failures": json.dumps(list(self.failures)),
                 "tolerances": json.dumps(self.tolerances._asdict()),
                 "settings": json.dumps(self.settings, default=str)}
        return dataset(fields, time=("epoch", np.asarray(self.t)), coords=coords, attrs=attrs,
                       what="CrossCheck.to_xarray")


def _data_for(x, eigvals, n):
    """(X, Spectrum): the data, or for a bare spectrum the (n, D) matrix [diag(sqrt(lam)); 0]
    whose Sigma = X^T X is diag(lam) (eigenvectors the identity)."""
    if x is not None:
        x = np.asarray(x)
        return x, spectrum_lib.compute_spectrum(x)
    lam = np.sort(np.asarray(eigvals, np.float64))[::-1]
    check_range("eigvals", lam, 0.0)
    f32 = np.finfo(np.float32)
    out = lam[(lam != 0) & ((lam < f32.tiny) | (lam > f32.max))]
    if out.size:  # the recursions and the training run in float32: such a lam would be 0 (or inf) there
        raise ValueError(f"eigvals: lam = {out[0]:.3g} is outside the range of float32 (nonzero magnitudes "
                         f"from {f32.tiny:.3g} to {f32.max:.3g}), in which crosscheck's gradient-descent "
                         "ways and training run: it would be computed as 0 (or inf); rescale the spectrum")
    d = lam.shape[0]
    if n is None or int(n) < d:
        raise ValueError(f"a bare spectrum needs n >= D = {d} samples; got n={n!r}")
    xm = np.zeros((int(n), d), np.float32)
    xm[np.arange(d), np.arange(d)] = np.sqrt(lam)
    return xm, spectrum_lib.compute_spectrum(xm)


def crosscheck(x: ArrayLike | None = None, *, eigvals: ArrayLike | None = None, n: int | None = None,
               eps: float = 0.0, gamma: float = 0.0, alpha: float, hidden: int, epochs: int,
               save_every: int | None = None, init: Literal["random", "orthogonal"] = "random",
               init_scale: float = 1e-3, key=None, fraction: float = 0.5,
               tolerances: Tolerances = Tolerances(), precision: Any = "highest") -> CrossCheck:
    """Run one linear-DAE configuration four ways and judge their agreement direction by direction.

    Args:
      x: data (N, D) (rows are samples) or a :class:`daedyn.data.Dataset` (its subset record goes
        to ``settings["data"]``), or None with ``eigvals`` and ``n``.
      eigvals: a spectrum lam (D,) of Sigma = X^T X instead of data; ``n`` >= D samples.
      n: sample count for ``eigvals`` (ignored with ``x``).
      eps: noise level N s^2 (marginalised Gaussian noise of variance eps / N), >= 0, or a
        piecewise-constant :mod:`daedyn.schedules` schedule of it (every way runs under it: the
        chained closed form, epoch k with eps(k) in the recursions and the training; docs/schedules.md).
      gamma: weight decay, >= 0, or a piecewise-constant schedule.
      alpha: learning rate, > 0 (tau = N / alpha).
      The fixed point w* of a schedule (for ``fraction`` and ``min_fixed_point``) is that of its
      value at the last epoch.
      hidden: H. epochs: epochs of gradient descent. save_every: record spacing (default epochs / 100,
        at least 1, a divisor of ``epochs``).
      init: "random" (i.i.d. N(0, init_scale^2) weights, the network's own start for every way) or
        "orthogonal" (section 3.2's decoupled start Wb1 = R D1, Wb2 = D2 R^T with
        d1 = d2 = init_scale: balanced, so all four ways should agree).
      key: PRNG key (default ``jax.random.key(0)``).
      fraction: learning time = first time the mapping reaches ``fraction`` of w*.
      tolerances: :class:`Tolerances`.
      precision: matmul precision of the matrix and training paths.
    Returns:
      :class:`CrossCheck`.
    Raises:
      ValueError: for bad arguments (both or neither of ``x`` / ``eigvals``, n < D for a spectrum,
        eigenvalues outside float32's range, ``save_every`` not a divisor of ``epochs``, a negative
        tolerance, unknown ``init``).
    The verdict is never "agree" when a way's mapping has NaN or inf (it diverged) or when no
    direction is checked (every w* below ``tolerances.min_fixed_point``): ``failures`` says why.
    Example:
      >>> r = crosscheck(eigvals=[4.0, 2.0, 1.0], n=4, alpha=0.01, hidden=2, epochs=2000,
      ...                save_every=10, init="orthogonal", init_scale=0.01)
      >>> r.verdict, sorted(r.pairs)[:2]
      (True, ['closed-matrix', 'closed-scalar'])
    """
    if (x is None) == (eigvals is None):
        raise ValueError("give exactly one of x (data) or eigvals (a spectrum, with n)")
    rows = x.subset if isinstance(x, data_lib.Dataset) else None
    x = x.x if isinstance(x, data_lib.Dataset) else x
    if init not in ("random", "orthogonal"):
        raise ValueError(f"init must be 'random' or 'orthogonal'; got {init!r}")
    for name, v in (("eps", eps), ("gamma", gamma)):
        schedules.require_piecewise(name, v, "crosscheck (its closed form)")  # refused before anything runs
        if not schedules.is_schedule(v):
            check_range(name, v, 0.0)
        elif np.ndim(v.values) != 1:
            raise ValueError(f"{name} must be a schedule of one value per piece (values (K + 1,)); got "
                             f"values of shape {np.shape(v.values)}")
    check_range("alpha", alpha, 0.0, lo_open=True)
    check_range("hidden", hidden, 1)
    check_range("epochs", epochs, 1)
    check_range("init_scale", init_scale, 0.0, lo_open=True)
    check_range("fraction", fraction, 0.0, 1.0, lo_open=True, hi_open=True)
    for name, value in tolerances._asdict().items():
        check_range(f"tolerances.{name}", value, 0.0)
    if save_every is None:
        save_every = max(1, int(epochs) // 100)
        while epochs % save_every:
            save_every -= 1  # the default: the nearest divisor below epochs / 100
    else:  # given: used as given, never silently changed
        check_range("save_every", save_every, 1)
        if int(save_every) != save_every or epochs % int(save_every):
            raise ValueError(f"save_every must be a whole divisor of epochs = {epochs} (records at 0, "
                             f"save_every, ..., epochs); got {save_every}")
        save_every = int(save_every)
    key = jr.key(0) if key is None else key
    xm, spec = _data_for(x, eigvals, n)
    nn, d = xm.shape
    h = int(hidden)
    k = min(h, d)
    v = spec.eigvecs
    if init == "random":
        params = models.init_autoencoder(d, h, key=jr.fold_in(key, 1), init_scale=init_scale)
        wb1, wb2 = dynamics.to_eigenbasis(params["w1"], params["w2"], v)
    else:
        wb1, wb2 = dynamics.orthogonal_init(d, h, init_scale, init_scale, key=jr.fold_in(key, 1))
        w1, w2 = dynamics.from_eigenbasis(wb1, wb2, v)
        params = {"w1": w1, "w2": w2}
    lam = np.asarray(spec.eigvals, np.float64)
    caught = []
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        if schedules.is_schedule(eps):
            noise_kw = dict(eps=eps, marginalised=True)
        else:
            noise_kw = dict(noise=noise_lib.gaussian(eps / nn) if eps else None, marginalised=bool(eps))
        run = train.train(xm, key=jr.fold_in(key, 2), alpha=alpha, gamma=gamma, hidden=h, epochs=epochs,
                          save_every=save_every, spectrum=spec, params=params, precision=precision,
                          **noise_kw)
        t = np.asarray(run.t, np.float64)
        w0 = np.asarray(train.initial_w0(params, v, kind="balanced"), np.float64)[:k]
        w0 = np.maximum(w0, np.finfo(np.float32).tiny)
        tau = nn / alpha
        closed = theory.small_init_trajectory(jnp.asarray(t)[:, None], jnp.asarray(lam[:k]), eps, gamma,
                                              w0=jnp.asarray(w0), tau=tau, n=nn)
        u = jnp.sqrt(jnp.asarray(w0, jnp.float32))
        scalar = dynamics.scalar_gd(jnp.asarray(lam[:k], jnp.float32), eps, u, u, alpha=alpha, epochs=epochs,
                                    gamma=gamma, n=nn, save_every=save_every, check_stability=False)
        matrix = dynamics.matrix_gd(jnp.asarray(lam, jnp.float32), wb1, wb2, eps=eps, gamma=gamma,
                                    alpha=alpha, n=nn, epochs=epochs, save_every=save_every,
                                    precision=precision, check_stability=False)
        caught = [f"{w.category.__name__}: {w.message}" for w in record]
    maps = {"closed": np.asarray(closed, np.float64), "scalar": np.asarray(scalar.w, np.float64).T,
            "matrix": np.asarray(matrix.mapping, np.float64)[:, :k],
            "train": np.asarray(run.mapping, np.float64)[:, :k]}
    last = lambda v: float(v(float(epochs))) if schedules.is_schedule(v) else v  # the final piece
    w_star = np.asarray(theory.fixed_point(lam[:k], last(eps), last(gamma), n=nn), np.float64)
    checked = w_star >= tolerances.min_fixed_point
    # located between the records with the per-direction (logistic) dynamics: independent of save_every
    cross = lambda w: np.asarray(train.crossing_times(t, w, fraction * w_star, fixed_point=w_star),
                                 np.float64)
    times = {m: np.where(checked, cross(w), np.nan) for m, w in maps.items()}
    early = [j for j in range(k) if any(times[m][j] < t[1] for m in ("matrix", "train")) and len(t) > 1]
    if early:  # a random start's first record is not on the sigmoid: nothing to locate the crossing from
        caught.append(f"direction(s) {early} reach {fraction:g} w* within the first record interval "
                      f"(before epoch {t[1]:g}); their measured learning times rest on the random start's "
                      f"record: pass a smaller save_every")
    regime = _regime_notes(init, float(init_scale), float(alpha * lam[0] / nn), h)
    if regime:
        caught.append("outside the measured regime of the per-direction prediction from a random start ("
                      + "; ".join(regime) + "; docs/crosscheck.md, 'Where the prediction holds': worst "
                      "learning-time error 4.8% inside): trust the verdict, not the prediction alone")
    pairs, failures = {}, []
    # a run that diverged or left the dtype, or a setting with nothing to compare, is never judged
    # to agree (a NaN difference on an unchecked direction would otherwise be ignored)
    for m, w in maps.items():
        bad = ~np.isfinite(w)
        if bad.any():
            failures.append(f"{m}: {int(bad.sum())} of {bad.size} mapping values are NaN or inf: that way "
                            f"diverged or left its dtype; nothing is judged to agree with it")
    if not checked.any():
        failures.append(f"no direction has w* >= {tolerances.min_fixed_point:g} (the largest w* is "
                        f"{float(np.max(w_star, initial=0.0)):.3g}): there is nothing to judge; lower eps "
                        f"or gamma, or tolerances.min_fixed_point")
    for i, a in enumerate(_WAYS):
        for b in _WAYS[i + 1:]:
            with np.errstate(invalid="ignore", over="ignore"):
                diff = maps[a] - maps[b]
                entry = {"max": np.max(np.abs(diff), axis=0), "rmse": np.sqrt(np.mean(diff ** 2, axis=0)),
                         "time_rel": np.abs(times[a] - times[b]) / np.fmin(times[a], times[b])}
            pairs[f"{a}-{b}"] = entry
            for q, tol in (("max", tolerances.max_diff), ("rmse", tolerances.rmse),
                           ("time_rel", tolerances.time_rel)):
                look = checked & ~(np.isnan(times[a]) & np.isnan(times[b])) if q == "time_rel" else checked
                val = np.where(look, entry[q], 0.0)
                bad = look & ~(val <= tol)  # NaN (diverged; learned by one way only) fails too
                if bad.any():
                    j = int(np.argmax(np.where(bad, np.nan_to_num(val, nan=np.inf), -1.0)))
                    failures.append(f"{a} vs {b}: {q} = {val[j]:.4g} > {tol:g} at direction {j} "
                                    f"(alpha lam / N = {alpha * lam[j] / nn:.3g}); {int(bad.sum())} "
                                    f"direction(s) fail")
    described = lambda v: ({"boundaries": np.asarray(v.boundaries).tolist(),
                            "values": np.asarray(v.values).tolist()}
                           if schedules.is_schedule(v) else float(v))
    settings = {"n": int(nn), "d": int(d), "hidden": h, "eps": described(eps), "gamma": described(gamma),
                "alpha": float(alpha), "tau": float(tau), "epochs": int(epochs), "save_every": save_every,
                "init": init, "init_scale": float(init_scale), "fraction": float(fraction),
                "source": "data" if x is not None else "spectrum", "warnings": caught,
                "measured_regime": {"inside": not regime, "outside": regime,
                                    "bounds": dict(_MEASURED_REGIME)},
                "data": None if rows is None else {**dataclasses.asdict(rows), "text": str(rows)}}
    return CrossCheck(t=t, eigvals=lam[:k], fixed_point=w_star, alpha_lam_over_n=alpha * lam[:k] / nn,
                      mapping=maps, times=times, pairs=pairs, checked=checked, verdict=not failures,
                      failures=failures, tolerances=tolerances, settings=settings)
