"""daedyn.theory, whole spectra (daedyn/theory/_spectrum.py): spectrum_mapping and predicted_loss."""

import jax.numpy as jnp
import numpy as np
import pytest

from daedyn import theory


def test_spectrum_mapping_and_predicted_loss(x64):
    eigvals = jnp.array([5.0, 2.0, 1.0, 0.5, 0.0])
    t = jnp.array([0.0, 10.0, 1e6])
    w = theory.spectrum_mapping(t, eigvals, 1.0, 0.1, w0=1e-3, tau=2.0, n=4, hidden=3)
    assert w.shape == (3, 5)
    expect = theory.small_init_trajectory(t[:, None], eigvals, 1.0, 0.1, w0=1e-3, tau=2.0, n=4)
    np.testing.assert_array_equal(w[:, :3], expect[:, :3])
    assert bool(jnp.all(w[:, 3:] == 0))
    # batch over eps: shape (E, T, D)
    wb = theory.spectrum_mapping(t, eigvals, jnp.array([0.0, 1.0])[:, None], w0=1e-3, tau=2.0, n=4)
    assert wb.shape == (2, 3, 5)
    projected = jnp.array([4.0, 3.0, 2.0, 1.0, 0.5])
    loss = theory.predicted_loss(t, eigvals, projected, 10, eps=1.0, gamma=0.1, w0=1e-3, tau=2.0, n=4,
                                 hidden=3)
    manual = np.sum((1 - np.asarray(w)) ** 2 * np.asarray(projected), axis=-1) / 20
    np.testing.assert_allclose(loss, manual, rtol=1e-14)
    # t = 0 from w0 = 0: nothing learned, loss = tr / (2 n_eval); training set, eps = gamma = 0,
    # t -> inf, all directions with lam > 0 learned: only the zero direction is left (it is 0 here)
    at_0 = float(theory.predicted_loss(0.0, eigvals, projected, 10, w0=0.0, tau=1.0, n=4))
    assert at_0 == pytest.approx(0.525)
    at_inf = float(theory.predicted_loss(1e6, eigvals, eigvals, 4, w0=1e-3, tau=1.0, n=4))
    assert at_inf == pytest.approx(0.0, abs=1e-12)




@pytest.mark.parametrize("hidden", [-1, 2.5, True, "2"])
def test_spectrum_mapping_hidden_must_be_an_int(hidden):
    # daedyn._checks.check_int: a Python or NumPy int >= 0 (bools are refused: True is not a width)
    with pytest.raises(ValueError, match="hidden must be an integer >= 0"):
        theory.spectrum_mapping(1.0, [2.0, 1.0], w0=0.1, tau=1.0, n=1, hidden=hidden)


def test_spectrum_mapping_hidden_numpy_int_equals_python_int():
    w_np = theory.spectrum_mapping(1.0, [2.0, 1.0, 0.5], w0=0.1, tau=1.0, n=1, hidden=np.int64(2))
    w_py = theory.spectrum_mapping(1.0, [2.0, 1.0, 0.5], w0=0.1, tau=1.0, n=1, hidden=2)
    np.testing.assert_array_equal(w_np, w_py)
    assert float(w_py[2]) == 0.0
