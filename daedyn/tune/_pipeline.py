"""One call from data arrays to a tuned noise level."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
from jax.typing import ArrayLike

from daedyn._checks import renamed
from daedyn.tune._config import TrainRoute
from daedyn.tune._objective import heldout_objective
from daedyn.tune._optimise import TuneResult, tune, tune_anisotropic
from daedyn.tune._problem import HeldoutProblem, heldout_problem

__all__ = ["NoiseTuning", "tune_noise"]


class NoiseTuning(NamedTuple):
    """Everything :func:`tune_noise` computed, stage by stage.

    Attributes:
      isotropic: the :class:`TuneResult` of the one-eps stage.
      anisotropic: the per-direction stage (None unless asked for and the first stage succeeded).
      eps0: the starting eps of the isotropic stage.
      objective: the held-out objective both stages minimised (for plots and re-evaluation).
      problem: the :class:`HeldoutProblem` behind it.
    """

    isotropic: TuneResult
    anisotropic: TuneResult | None
    eps0: float
    objective: Callable
    problem: HeldoutProblem

    @property
    def result(self) -> TuneResult:
        """The last stage run: anisotropic when there is one, else isotropic."""
        return self.isotropic if self.anisotropic is None else self.anisotropic

    def to_xarray(self, stage: str = "result"):
        """One stage's history as an ``xarray.Dataset`` (:meth:`TuneResult.to_xarray`), with
        ``attrs["stage"]``, ``attrs["eps0"]`` and the held-out problem's sizes.

        Args:
          stage: "isotropic", "anisotropic" or "result" (the last stage run).
        Raises:
          ValueError: an unknown stage, or "anisotropic" when that stage did not run.
          ImportError: xarray (the ``sweep`` extra) is not installed.
        """
        if stage not in ("isotropic", "anisotropic", "result"):
            raise ValueError(f"stage must be 'isotropic', 'anisotropic' or 'result'; got {stage!r}")
        chosen = self.result if stage == "result" else getattr(self, stage)
        if chosen is None:
            raise ValueError("stage='anisotropic': the anisotropic stage did not run (anisotropic=False, "
                             "or the isotropic stage failed)")
        ds = chosen.to_xarray()
        ds.attrs.update(stage="isotropic" if chosen is self.isotropic else "anisotropic",
                        eps0=float(self.eps0))
        return ds


@renamed(x_train="x")
def tune_noise(x: ArrayLike, x_heldout: ArrayLike, *, epochs: ArrayLike, alpha: ArrayLike,
               eval_sigma2: ArrayLike, eps0: ArrayLike | None = None, route: Any = "closed_form",
               anisotropic: bool = False, optimizer: Any = None, max_steps: int = 100,
               progress: Any = None, log: Callable[[dict], Any] | None = None,
               **objective_kwargs) -> NoiseTuning:
    """Tune the noise level eps of a linear DAE on a held-out split, from data arrays.

    Builds :func:`heldout_problem`, :func:`heldout_objective` and runs :func:`tune` from ``eps0``;
    with ``anisotropic=True`` it continues with :func:`tune_anisotropic` from the isotropic optimum.

    Args:
      x, x_heldout: (N, D) training and (M, D) held-out data (rows are samples), M >= 1 (the keyword
        ``x_train`` is deprecated).
      epochs, alpha, eval_sigma2: as in :func:`heldout_objective`.
      eps0: starting eps, > 0; default the matched noise N * eval_sigma2 (the optimum at
        convergence when the held-out spectrum equals the train spectrum), or 0.01 N without
        evaluation noise.
      route: "closed_form", "dynamics" or "train", or a route config (:class:`DynamicsRoute`, ...).
      anisotropic: also tune a per-direction eps_j (never worse than the isotropic optimum).
      optimizer: optax optimiser (default L-BFGS); max_steps: iteration cap.
      progress: optional factory ``progress(stage: str) -> (done, total) callback`` (e.g.
        ``lambda stage: progress_bar("steps", desc=stage)``), one callback per stage
        ("isotropic", "anisotropic"), passed to :func:`tune`.
      log: the logging hook of :func:`tune`, called for every iterate of both stages (records carry
        ``"stage"``).
      **objective_kwargs: other options of :func:`heldout_objective` (gamma, hidden, w0, key, ...).
    Returns:
      :class:`NoiseTuning` with both stages (``.result`` is the last one run), the starting eps
      and the objective.
    Raises:
      ValueError: empty held-out set, epochs <= 0, eps0 <= 0 and other invalid arguments, before
        any work is done.
    """
    from daedyn._checks import check_range

    check_range("epochs", epochs, 0.0, lo_open=True)
    if eps0 is not None and not (np.all(np.isfinite(np.asarray(eps0, np.float64)))
                                 and np.all(np.asarray(eps0, np.float64) > 0)):
        raise ValueError(f"initial eps (eps0) must be finite and > 0 (it is optimised as log eps); "
                         f"got {eps0!r}")
    keep_data = route == "train" or isinstance(route, TrainRoute)
    problem = heldout_problem(x, x_heldout, keep_data=keep_data)
    if eps0 is None:  # matched noise N s_eval^2: the optimum when train and held-out spectra agree
        s2 = float(np.max(np.asarray(eval_sigma2)))
        eps0 = problem.n * s2 if s2 > 0 else 0.01 * problem.n
    objective = heldout_objective(problem, epochs=epochs, alpha=alpha, eval_sigma2=eval_sigma2,
                                  route=route, **objective_kwargs)
    bar = (lambda stage: None) if progress is None else progress
    staged = lambda stage: None if log is None else (lambda record: log({"stage": stage, **record}))
    iso = tune(objective, {"eps": eps0}, optimizer=optimizer, max_steps=max_steps, progress=bar("isotropic"),
               log=staged("isotropic"))
    aniso = None
    if anisotropic and iso.success:
        aniso = tune_anisotropic(objective, iso, problem.eigvals.shape[-1], optimizer=optimizer,
                                 max_steps=max_steps, progress=bar("anisotropic"), log=staged("anisotropic"))
    return NoiseTuning(iso, aniso, float(eps0), objective, problem)
