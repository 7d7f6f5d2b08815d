"""Tuning per-component Gaussian noise variances v (a (D,) vector) through a route of the objective.

Additive Gaussian noise with per-component variances v has the marginalised term C = N diag(v)
(docs/corruption.md). :func:`tune_variances` first tunes one shared variance (isotropic noise,
eps = N v, the paper's case) and then, from that optimum, all D variances at once, by
:func:`~daedyn.tune.tune` in log v (positivity by the log reparametrisation). The second stage
starts where the objective equals the isotropic optimum and :func:`~daedyn.tune.tune` never
returns a worse point than its start, so the result is never worse than the best isotropic noise
on the tuning split; whether it generalises is a question for a second held-out split (the test on
mnist5k measures it).

The route sees the term in the form it integrates (:mod:`daedyn.tune._corruption`): the
per-direction eps_j = N [V^T diag(v) V]_jj = N sum_k V_kj^2 v_k on the closed form and the balanced
dynamics, the coupled N V^T diag(v) V on the matrix dynamics and on training.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.typing import ArrayLike

from daedyn._checks import check_range
from daedyn.tune._corruption import corruption_objective_fn
from daedyn.tune._optimise import TuneResult, tune

__all__ = ["VarianceTuning", "variances_objective_fn", "tune_variances"]


class VarianceTuning(NamedTuple):
    """Result of :func:`tune_variances`.

    Attributes:
      var: (D,) the tuned per-component variances. objective: the objective there.
      isotropic_var: the best shared variance (stage 1). isotropic_objective: the objective there.
      isotropic: stage 1's :class:`~daedyn.tune.TuneResult`; result: stage 2's (None if stage 1
        failed).
      objective_fn: ``objective({"var": v})`` both stages minimised (a scalar v is isotropic), to
        re-evaluate or to build the same objective on another split.
    """

    var: Array
    objective: float
    isotropic_var: Array
    isotropic_objective: float
    isotropic: TuneResult
    result: TuneResult | None
    objective_fn: Any

    def to_xarray(self):
        """The tuning as an ``xarray.Dataset``: the tuned variances ``variances`` over ``input`` (one
        per component of the data; not ``var``, which is ``Dataset.var``), the per-component stage's
        history over ``step`` (:meth:`TuneResult.to_xarray`, its fields prefixed ``history_``:
        ``history_var`` over (``step``, ``input``), ``history_objective``, ...; absent when the
        shared stage failed) and the shared stage's over ``isotropic_step`` (prefixed
        ``isotropic_``). Attributes: both
        objectives, the best shared variance, and the last stage's status.

        Raises:
          ImportError: xarray (the ``sweep`` extra) is not installed.
        """
        from daedyn._xarray import dataset

        fields = {"variances": (np.asarray(self.var), ("input",))}
        fields.update(self.isotropic.history_fields(step="isotropic_step", prefix="isotropic_"))
        coords = {"isotropic_step": np.arange(len(self.isotropic.history.objective))}
        last = self.isotropic
        if self.result is not None:
            fields.update(self.result.history_fields(dims={"var": ("input",)}, prefix="history_"))
            coords["step"] = np.arange(len(self.result.history.objective))
            last = self.result
        attrs = {**last.summary(), "objective": float(self.objective),
                 "isotropic_var": float(np.asarray(self.isotropic_var)),
                 "isotropic_objective": float(self.isotropic_objective)}
        return dataset(fields, coords=coords, attrs=attrs, what="VarianceTuning.to_xarray")


def variances_objective_fn(problem, *, epochs: ArrayLike | None, alpha: ArrayLike, eval_sigma2: ArrayLike,
                           route: Any = "closed_form", **kwargs):
    """``objective({"var": v})``: the held-out loss after training with Gaussian noise of
    per-component variances v ((D,) or a scalar for isotropic noise).

    Args:
      problem, epochs, alpha, eval_sigma2, route: as :func:`~daedyn.tune.masking_objective_fn`.
      **kwargs: hidden, w0 (default 1e-4), gamma, init, key, init_scale, remat_every, precision.
    Returns:
      A pure function of a dict with ``"var"`` (other keys override gamma, alpha as in
      :func:`~daedyn.tune.heldout_objective`).
    """
    return corruption_objective_fn(problem, "variances", epochs=epochs, alpha=alpha, route=route,
                                   eval_sigma2=eval_sigma2, **kwargs)


def tune_variances(problem, *, epochs: ArrayLike | None, alpha: ArrayLike, eval_sigma2: ArrayLike,
                   route: Any = "closed_form", var0: ArrayLike | None = None, max_steps: int = 100,
                   optimizer: Any = None, **kwargs) -> VarianceTuning:
    """Tune one shared noise variance, then D per-component variances from it.

    Args:
      problem, epochs, alpha, eval_sigma2, route, **kwargs: as :func:`variances_objective_fn`.
      var0: starting shared variance, > 0 (default ``eval_sigma2``: the matched noise, or 0.01
        without evaluation noise).
      max_steps, optimizer: per stage, as :func:`~daedyn.tune.tune`.
    Returns:
      :class:`VarianceTuning`.
    Raises:
      ValueError: for var0 <= 0, or as :func:`variances_objective_fn`.
    Example:
      >>> import numpy as np
      >>> from daedyn.tune import heldout_problem
      >>> x = np.random.default_rng(0).uniform(size=(300, 6)) * np.linspace(1.0, 0.2, 6)
      >>> r = tune_variances(heldout_problem(x[:200], x[200:]), epochs=500.0, alpha=0.05,
      ...                    eval_sigma2=0.05)
      >>> r.var.shape, bool(r.objective <= r.isotropic_objective)
      ((6,), True)
    """
    s2 = float(np.max(np.asarray(eval_sigma2)))
    var0 = (s2 if s2 > 0 else 0.01) if var0 is None else var0
    check_range("var0", var0, 0.0, lo_open=True)
    f = variances_objective_fn(problem, epochs=epochs, alpha=alpha, eval_sigma2=eval_sigma2, route=route,
                               **kwargs)
    iso = tune(f, {"var": var0}, optimizer=optimizer, max_steps=max_steps)
    d = int(problem.eigvals.shape[-1])
    dtype = problem.eigvals.dtype
    v_iso = jnp.asarray(iso.params["var"], dtype)
    if not iso.success:
        return VarianceTuning(jnp.full((d,), v_iso), iso.objective, v_iso, iso.objective, iso, None, f)
    res = tune(f, {"var": np.full((d,), float(v_iso))}, optimizer=optimizer, max_steps=max_steps)
    return VarianceTuning(jnp.asarray(res.params["var"], dtype), res.objective, v_iso, iso.objective, iso,
                          res, f)
