"""The measured choice of the gradient form (daedyn._linear._measure): one measurement per problem,
cached; the result equals that of the form it picked; off switch and small problems."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from daedyn import _linear as core
from daedyn._linear import _measure
from daedyn.dynamics import matrix_gd, random_init

D, H = 12, 5


def _run(form, dtype=jnp.float32):
    lam = jnp.asarray(np.geomspace(10.0, 0.5, D), dtype)
    w1, w2 = random_init(D, H, init_scale=0.1, key=jax.random.key(0), dtype=dtype)
    return matrix_gd(lam, w1, w2, eps=jnp.asarray([0.0, 0.5, 2.0], dtype), gamma=0.01, alpha=0.02, n=1.0,
                     epochs=30, save_every=10, form=form, check_stability=False)


@pytest.fixture
def measure_small(monkeypatch):
    monkeypatch.setattr(_measure, "MEASURE_MIN_FLOPS", 0)
    monkeypatch.setattr(_measure, "_CACHE", {})
    calls = []
    real = _measure._measure

    def spy(*args):
        calls.append(args[1:])
        return real(*args)

    monkeypatch.setattr(_measure, "_measure", spy)
    return calls


def test_auto_measures_once_and_equals_the_form_it_picked(measure_small):
    auto = _run("auto")
    (key, (winner, seconds)), = _measure.measured_forms().items()
    assert winner in ("gram", "gram_t", "square") and set(seconds) == {"gram", "square", "gram_t"}
    assert key[:5] == (D, H, 2, "float32", 3) and all(s > 0 for s in seconds.values())
    _run("auto")
    assert len(measure_small) == 2 and measure_small[0] == measure_small[1]  # asked twice ...
    assert len(_measure.measured_forms()) == 1  # ... measured once (cached per shape/dtype/device)
    picked = _run(winner)
    for a, b in zip(jax.tree_util.tree_leaves(auto), jax.tree_util.tree_leaves(picked), strict=True):
        np.testing.assert_array_equal(a, b)  # "auto" is exactly the form it resolved to (ws: every factor)


def test_measurement_off_and_small_problems_use_the_flop_count(monkeypatch):
    monkeypatch.setattr(_measure, "_CACHE", {})
    assert core.check_form("auto", 100, 40, measure=dict(batch=4)) == "gram"  # 4 H <= 3 D; small step
    monkeypatch.setenv("DAEDYN_MEASURE_FORMS", "0")
    assert core.check_form("auto", 784, 256, measure=dict(batch=64)) == "gram"  # large, but switched off
    assert core.check_form("auto", 100, 90) == "square"  # no measure: the flop count (tune's route)
    assert _measure.measured_forms() == {}
    with pytest.raises(ValueError, match="form must be 'auto', 'gram', 'gram_t' or 'square'"):
        core.check_form("fast", 10, 5)

# Every form gives the same numbers up to rounding (so the measured choice changes only the last
# bits): tests/test_dynamics_matrix.py::test_forms_give_the_same_gd_and_flow and
# ::test_all_forms_equal_the_contract_rhs.
