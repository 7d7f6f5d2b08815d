"""The linear denoising autoencoder's algebra, written once (private core).

Every layer that needs the expected loss of a linear DAE, its gradient, a rotation to the eigenbasis
of Sigma, the singular values of the product of the weights, the per-direction observables or the
gradient-descent stability check takes it from here: ``daedyn.theory.expected_loss``,
``daedyn.dynamics`` (matrix flows and GD), ``daedyn.train`` (the eigen and Sigma paths, the
marginalised noise term, the stability warning) and ``daedyn.tune`` (the matrix route).

Design (docs/architecture.md):

- A network is a tuple of factors ``ws = (W_1, ..., W_L)`` with W = W_L ... W_1 (L = 2 is the
  paper's (W1, W2)); every function takes any L >= 2.
- Sigma and the corruption term C come in the basis of the weights as a scalar (times I), a
  vector (a diagonal) or a (D, D) matrix, so isotropic noise (eps), per-direction eps_j and any
  quadratic corruption matrix share one code path; the cheapest algebra is picked at trace time.
- Functions act on one network and are pure; drivers ``vmap`` them over seeds and settings and
  pass a matmul helper from :func:`matmul_fn` (one place that applies ``precision``).
"""

from daedyn._linear._basis import (
    Factors,
    eigh_desc,
    eigh_desc_float64,
    from_eigenbasis,
    inner_product,
    mapping,
    matmul_fn,
    product,
    svdvals,
    times,
    to_eigenbasis,
    weight_norm,
)
from daedyn._linear._coupled import (
    check_coupled_stability,
    coupled_fixed_point,
    coupled_hessian_eigenvalue,
    learned_directions,
)
from daedyn._linear._loss import (
    FORMS,
    LOSS_FORMS,
    check_form,
    choose_form,
    data_loss,
    gd_step,
    grad,
    loss,
    noise_term,
    observe,
    rhs,
    trace_of,
)
from daedyn._linear._stability import (
    UnstableStepWarning,
    check_gd_stability,
    max_hessian_eigenvalue,
    start_hessian_eigenvalue,
)

__all__ = [
    "Factors", "matmul_fn", "eigh_desc", "eigh_desc_float64", "to_eigenbasis", "from_eigenbasis",
    "inner_product", "product", "mapping", "svdvals", "weight_norm", "times",
    "FORMS", "LOSS_FORMS", "choose_form", "check_form", "trace_of", "noise_term", "loss", "data_loss",
    "rhs", "grad", "gd_step", "observe",
    "UnstableStepWarning", "check_gd_stability", "max_hessian_eigenvalue", "start_hessian_eigenvalue",
    "coupled_fixed_point", "coupled_hessian_eigenvalue", "learned_directions",
    "check_coupled_stability",
]
