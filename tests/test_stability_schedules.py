"""The GD stability check of scheduled ``scalar_gd`` and ``matrix_gd`` (daedyn/dynamics/_scalar.py
``_stability``, _matrix.py ``_piecewise_stability``) piece by piece: the rates in force together from
each step where one changes are checked, and the worst piece is named. The reference is a NumPy loop of
the textbook update (does GD settle on the piece's fixed point?), never the check itself."""

import warnings

import numpy as np
import pytest

from daedyn import dynamics, schedules


def numpy_gd(lam, alphas, gammas, w1, w2, epochs):
    """Depth-2 GD on one direction (n = 1, eps = 0), step j with alpha(j), gamma(j): w at every epoch."""
    ws = [w1 * w2]
    for j in range(epochs):
        a, g, u = alphas(j), gammas(j), w1 * w2
        w1, w2 = (w1 + a * (w2 * (lam - lam * u) - g * w1),
                  w2 + a * (w1 * (lam - lam * u) - g * w2))
        ws.append(w1 * w2)
    return np.asarray(ws)


def run(gamma, alpha, epochs=100):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        traj = dynamics.scalar_gd(1.0, 0.0, 0.1, 0.1, alpha=alpha, gamma=gamma, epochs=epochs, save_every=10)
    unstable = [str(w.message) for w in caught if issubclass(w.category, dynamics.UnstableStepWarning)]
    return traj, unstable


def test_unstable_before_weight_decay_switches_on():
    # issue 31: alpha = 1.05, lam = 1, gamma = 0 until epoch 50 then 0.2. The largest gamma (0.2) makes
    # the fixed point look stable (alpha h_max = 1.05 * 1.6 = 1.68), but for 50 epochs gamma = 0 and
    # alpha h_max = 2.1: the reference loop never settles on w* = 1 there (it sits at 1.19, a 2-cycle of
    # the factors), exactly as the constant gamma = 0 run, which warns.
    ref = numpy_gd(1.0, lambda j: 1.05, lambda j: 0.0 if j < 50 else 0.2, 0.1, 0.1, 100)
    assert np.all(np.abs(ref[20:50] - 1.0) > 0.1)  # measured 0.19
    assert abs(ref[-1] - 0.8) < 1e-6  # and settles once gamma = 0.2 (w* = 0.8, stable)
    traj, unstable = run(schedules.piecewise_constant([50.0], [0.0, 0.2]), 1.05)
    np.testing.assert_allclose(np.asarray(traj.w), ref[::10], rtol=1e-5)  # float32 vs float64 loop
    assert len(unstable) == 1, unstable
    assert "from epoch 0" in unstable[0] and "alpha * h_max = 2.1" in unstable[0]
    _, constant = run(0.0, 1.05)
    assert len(constant) == 1


@pytest.mark.parametrize("boundary, first", [(30.0, 30), (30.5, 31)])
def test_worst_piece_is_named(boundary, first):
    # alpha steps up from 0.5 to 1.05 at the boundary (gamma = 0): the second piece cannot settle; step j
    # uses alpha(j), so a boundary at 30.5 first acts at step 31
    _, unstable = run(0.0, schedules.piecewise_constant([boundary], [0.5, 1.05]))
    assert len(unstable) == 1 and f"from epoch {first} " in unstable[0], unstable


def test_no_warning_when_each_piece_is_stable():
    # large alpha only while gamma = 0, large gamma only with a small alpha: every piece is stable (0.9 * 2
    # = 1.8; 0.1 * (1.5 + 1) = 0.25), but the largest alpha with the largest gamma (0.9 * 2.5 = 2.25) is
    # not. The reference loop settles on w* = 1 and then on the origin.
    gam = schedules.piecewise_constant([50.0], [0.0, 1.5])
    alpha = schedules.piecewise_constant([50.0], [0.9, 0.1])
    ref = numpy_gd(1.0, lambda j: 0.9 if j < 50 else 0.1, lambda j: 0.0 if j < 50 else 1.5, 0.1, 0.1, 100)
    assert abs(ref[50] - 1.0) < 1e-5  # measured 1.7e-6 (a damped oscillation, factor -0.8 per step)
    assert np.all(np.diff(ref[51:]) < 0) and ref[-1] < 2e-3  # then decays on the origin (0.90 per step)
    traj, unstable = run(gam, alpha)
    assert unstable == []
    np.testing.assert_allclose(np.asarray(traj.w), ref[::10], rtol=1e-4)  # float32 vs float64 loop


def test_matrix_gd_checks_each_piece():
    # the same settings in matrix_gd (D = H = 2, a decoupled orthogonal start: direction 0 is the scalar
    # recursion from w1 = w2 = 0.3), and the case where each piece is stable but the extremes are not
    w1, w2 = dynamics.orthogonal_init(2, 2, 0.3, 0.3)
    lam = np.array([1.0, 0.5])
    pieces = lambda a, b: schedules.piecewise_constant([50.0], [a, b])  # noqa: E731
    cases = [(pieces(0.0, 0.2), 1.05, lambda j: 1.05, 1),
             (pieces(0.0, 1.5), pieces(0.9, 0.1), lambda j: 0.9 if j < 50 else 0.1, 0)]
    for gamma, alpha, alphas, n_warn in cases:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            traj = dynamics.matrix_gd(lam, w1, w2, alpha=alpha, gamma=gamma, n=1, epochs=100, save_every=10)
        unstable = [str(w.message) for w in caught if issubclass(w.category, dynamics.UnstableStepWarning)]
        assert len(unstable) == n_warn, unstable
        assert all("from epoch 0 " in m for m in unstable)
        ref = numpy_gd(1.0, alphas, lambda j, g=gamma: float(g(float(j))), 0.3, 0.3, 100)
        np.testing.assert_allclose(np.asarray(traj.mapping[:, 0]), ref[::10], rtol=1e-4, atol=1e-7)


def test_train_checks_each_piece():
    # train (full-batch linear GD): alpha lam_0 / N = 1.05 with gamma = 0 for 50 epochs, then a weight
    # decay that would make the fixed point stable; the top direction never settles on its fixed
    # point (1) before epoch 50, and the warning names that piece
    import jax.random as jr

    from daedyn import train

    x = np.random.default_rng(0).normal(size=(20, 3)) * np.array([1.0, 0.5, 0.2])
    lam0 = np.linalg.eigvalsh(x.T @ x)[-1]
    gamma = schedules.piecewise_constant([50.0], [0.0, 0.2 * lam0 / 20])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = train.train(x, key=jr.key(0), hidden=3, epochs=100, save_every=10, alpha=1.05 * 20 / lam0,
                        gamma=gamma)
    unstable = [str(w.message) for w in caught if issubclass(w.category, dynamics.UnstableStepWarning)]
    assert len(unstable) == 1 and "from epoch 0 " in unstable[0], unstable
    assert np.all(np.abs(np.asarray(r.mapping)[2:6, 0] - 1.0) > 0.05)  # epochs 20-50: not settled
