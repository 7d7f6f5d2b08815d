"""Linear diffusion models: the learning dynamics of a linear denoiser trained across noise levels.

A denoiser ``D(x~; s) = c_skip(s) x~ + c_out(s) F(c_in(s) x~)`` with ``F = W_L ... W_1`` shared by all
noise levels s, trained on ``(1/(2N)) sum_i E_s E_n w(s) ||D(x_i + s n; s) - x_i||^2``, is along each
eigen-direction of ``Sigma = X^T X`` the paper's DAE with ``lam -> B`` and ``lam + eps -> A``
(docs/diffusion.md). This package gives those coefficients as a value and what follows from them; it
has no dynamics of its own (closed forms: :mod:`daedyn.theory`; numerical runs: :mod:`daedyn.dynamics`,
both with ``noise=Objective(...)``):

- noise-level distributions :class:`LogNormal`, :class:`LogUniform`, :class:`Ladder` (``_levels``);
- :class:`Objective`: distribution, weighting, preconditioning, sigma_data, conditioning; its
  ``coefficients(lam, n) -> (A, B)`` and the corruption protocol ``direction_moments`` (``_objective``);
- :func:`predict`: each direction's F value over training and the variance the probability-flow ODE
  generates from it, ``.to_xarray()`` (``_predict``);
- :func:`kl_divergence`, :func:`frechet_distance` between the generated Gaussian and the data's,
  training or held-out (``_divergence``).
"""

from daedyn.diffusion._levels import Ladder, LogNormal, LogUniform
from daedyn.diffusion._objective import Objective
from daedyn.diffusion._predict import predict
from daedyn.diffusion._sample import sample
from daedyn.diffusion._train import train
from daedyn.diffusion._tune import tune

__all__ = ["LogNormal", "LogUniform", "Ladder", "Objective", "predict", "train", "sample", "tune"]
