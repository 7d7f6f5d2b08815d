"""The paper's figures, regenerated from daedyn's own theory, dynamics and training code.

Every figure is a function ``figure_*(*, quick, out_dir=None, key=..., data_dir=None)`` returning a
:class:`FigureResult` (a matplotlib ``Figure`` and the numbers behind it). With ``out_dir`` it writes
``<name>.png``, ``<name>.pdf``, ``<name>.npz`` (arrays) and ``<name>.json`` (settings, scalars,
array shapes, skipped panels, versions).

This is the only part of daedyn that imports matplotlib; it never imports ``pyplot`` (figures carry
an Agg canvas), so it does not change the backend of a user's session.

Plots of single computations, as the ``daedyn`` subcommands draw them: :func:`plot_closed_form`,
:func:`plot_scalar_runs`, :func:`plot_matrix_mapping`, :func:`plot_training_run`,
:func:`plot_noise_tuning`, :func:`plot_objective`, :func:`plot_schedule_tuning`,
:func:`plot_crosscheck`. Long figures report their steps, and their training runs' progress,
inside :func:`reporting`.

Figures (``FIGURES`` maps the CLI names to the functions):
  "1"  Figure 1: scalar GD paths vs Eq. (5) for eps = 0, 1, 5 and loss surfaces.
  "2"  Figure 2: noise vs equivalent weight decay over lam (closed forms).
  "3"  Figure 3: optimal learning rates, ratio R (Eq. (8)) and the DAE - WDAE mapping difference.
  "4"  Figure 4: loss surfaces with weight decay, w(t), weight norms, small-start run.
  "5"  Figure 5: linear AE / WDAE / DAE on MNIST and CIFAR-10, theory lines and measured markers.
  "6"  Figure 6: ReLU AE / WDAE / DAE, per-direction mapping (supplement F).
  "s1" Supplement Figure 1: the same with tanh.
  "learning_time"  beyond the paper: measured vs predicted learning time per direction.
  "tuning"         beyond the paper: held-out loss vs eps with the tuned optimum.
  "corruption"     beyond the paper: what masking noise suppresses per direction vs isotropic
                   Gaussian noise, and the error of the per-direction theory (docs/corruption.md).
  "depth"          beyond the paper: deep linear AE / WDAE / DAE (L = 2, 3, 4) trained vs theory, the
                   learning threshold weight decay creates at depth, learning time vs w0 (docs/depth.md).
  "schedules"      beyond the paper: a tuned noise schedule eps(t) vs the best constant eps on real
                   images, confirmed by training linear DAEs with both (docs/schedules.md).
  "diffusion"      beyond the paper: a linear denoiser trained across noise levels: learning time vs
                   variance with and without EDM preconditioning (theory and trained), the generated
                   spectrum and KL over training, a tuned noise-level distribution (docs/diffusion.md);
                   reached as ``FIGURES["diffusion"]`` (not a public name of its own: the name budget).
"""

from daedyn.figures._beyond import figure_learning_time, figure_tuning, plot_crosscheck
from daedyn.figures._common import FigureResult, reporting
from daedyn.figures._corruption import figure_corruption
from daedyn.figures._depth import figure_depth
from daedyn.figures._diffusion import figure_diffusion
from daedyn.figures._noise_decay import figure_2, figure_3
from daedyn.figures._real_data import figure_5, figure_6, figure_s1
from daedyn.figures._runs import plot_closed_form, plot_matrix_mapping, plot_scalar_runs, plot_training_run
from daedyn.figures._scalar import figure_1, figure_4
from daedyn.figures._schedules import figure_schedules, plot_schedule_tuning
from daedyn.figures._tuning import plot_noise_tuning, plot_objective

FIGURES = {
    "1": figure_1,
    "2": figure_2,
    "3": figure_3,
    "4": figure_4,
    "5": figure_5,
    "6": figure_6,
    "s1": figure_s1,
    "learning_time": figure_learning_time,
    "tuning": figure_tuning,
    "corruption": figure_corruption,
    "depth": figure_depth,
    "schedules": figure_schedules,
    "diffusion": figure_diffusion,
}

__all__ = [
    "FIGURES", "FigureResult", "figure_1", "figure_2", "figure_3", "figure_4", "figure_5", "figure_6",
    "figure_s1", "figure_learning_time", "figure_tuning", "figure_corruption", "figure_depth",
    "figure_schedules", "plot_closed_form", "plot_scalar_runs", "plot_matrix_mapping",
    "plot_training_run",
    "plot_noise_tuning", "plot_objective", "plot_schedule_tuning", "plot_crosscheck", "reporting",
]
