"""Training real autoencoders with optax inside ``lax.scan``, observed per eigen-direction.

Networks are the one-hidden-layer autoencoders of :mod:`daedyn.models` (linear or nonlinear). The
objective (paper scaling, ``loss_scale="paper"``; docs/CONTRACTS.md) for a batch of B inputs is

    L = 1/(2B) sum_i ||x_i - f(x_i + n_i)||^2 + (gamma / 2)(||W1||^2 + ||W2||^2),

with noise n_i sampled afresh every step, or for linear networks the marginalised (expected) loss of
Eq. (1) with the corruption term ``eps tr(W W^T) / (2N)``, eps = N s^2. Full-batch gradient descent
with rate alpha then gives exactly the paper's dynamics with tau = N / alpha, Eqs. (2)-(3) and (6).
``loss_scale="mse"`` is the authors' nonlinear (Figure 6) setting: the mean of the squared error over
all B x D entries plus SGD weight decay (gamma / 2)||W||^2, i.e. the same loss with normaliser
N D / 2 in place of N, so tau = N D / (2 alpha).

The marginalised linear loss needs the data only through Sigma = X^T X; its algebra (loss,
closed-form gradient, rotations, observables, stability check) is the shared core
:mod:`daedyn._linear`. With the spectrum Sigma = V diag(lam) V^T a run can take place in the
eigenbasis (``path="eigen"``: O(D H^2) per step, never touches X), with Sigma in the input basis
(``path="sigma"``, any optax optimiser) or on the data matrix (``path="data"``, as the authors did).

Every ``save_every`` epochs (and at epoch 0) the run records, without leaving the device:

- ``mapping`` (D,): per-direction mapping lam_hat_j / lam_j with lam_hat_j = [V^T (sum_i xhat_i x_i^T) V]_jj
  (supplement section F). For a linear network this equals diag(V^T W V) exactly and is computed so
  (also for lam_j = 0); for a nonlinear one it is NaN where lam_j <= lam_0 * D * machine epsilon.
- ``singular_values`` (min(H, D),): singular values of W2 W1, descending ("strength", Figure 5;
  linear only).
- ``weight_norm``: ||W1||^2 + ||W2||^2.
- ``train_loss`` / ``heldout_loss``: clean reconstruction loss 1/(2 N) sum_i ||x_i - f(x_i)||^2 on the
  training / held-out set (paper scaling whatever ``loss_scale``; compare
  :func:`daedyn.theory.predicted_loss`).

Layout (one job per private module):

- ``_data``: :func:`prepare_data`, :class:`TrainData`.
- ``_config``: :class:`Hyper` (traced alpha, gamma, eps), :class:`TrainConfig` (static structure).
- ``_objective``: the objective, its gradient (the core's closed form on the eigen and Sigma paths)
  and the observables.
- ``_loop``: the one training loop (start, advance, finish) and :func:`train_fn`, pure and
  differentiable.
- ``_driver``: :func:`train` and :func:`train_batch` (chunks, progress, checkpoints, resume).
- ``_compare``: :func:`compare_with_theory`, :func:`initial_w0`.
"""

from daedyn.train._compare import TheoryComparison, compare_with_theory, crossing_times, initial_w0
from daedyn.train._config import Hyper, TrainConfig
from daedyn.train._data import TrainData, prepare_data
from daedyn.train._driver import TrainResult, train, train_batch
from daedyn.train._loop import train_fn

__all__ = [
    "Hyper", "TrainConfig", "TrainData", "TrainResult", "TheoryComparison", "prepare_data", "train_fn",
    "train", "train_batch", "initial_w0", "compare_with_theory", "crossing_times",
]
