"""The one validation and dtype layer (daedyn._checks): every helper on its own."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from daedyn import _checks as ch


def test_check_range_accepts_the_interval_and_names_the_parameter():
    ch.check_range("eps", [0.0, 1.0, 1e308], 0.0)
    ch.check_range("alpha", 0.5, 0.0, 1.0, lo_open=True, hi_open=True)
    with pytest.raises(ValueError, match=r"^alpha must lie in \(0, 1\); got 0$"):
        ch.check_range("alpha", 0.0, 0.0, 1.0, lo_open=True, hi_open=True)
    with pytest.raises(ValueError, match=r"^gamma must lie in \[0, inf\); got 2 of 3 values outside"):
        ch.check_range("gamma", [-1.0, 0.5, -2.0], 0.0)
    with pytest.raises(ValueError, match=r"contains NaN"):
        ch.check_range("lam", [1.0, np.nan], 0.0)
    with pytest.raises(ValueError, match="must be numeric"):
        ch.check_range("n", "ten", 1)


@pytest.mark.parametrize("value", [np.inf, -np.inf, [1.0, np.inf]])
def test_infinite_values_are_never_in_range(value):
    """An infinite end of a range is open: +-inf are refused even by an unbounded range."""
    with pytest.raises(ValueError, match=r"^x must lie in \(-inf, inf\)"):
        ch.check_range("x", value)
    with pytest.raises(ValueError, match=r"^x must lie in \(-inf, inf\)"):
        ch.check_finite("x", value)


def test_traced_values_are_not_checked():
    """Under jit the value is unknown: no error, no concretisation error."""
    out = jax.jit(lambda v: (ch.check_range("eps", v, 0.0), v)[1])(-1.0)
    assert float(out) == -1.0
    assert ch.concrete(jnp.ones(2)) is not None


def test_check_int():
    assert ch.check_int("epochs", 5, 0) == 5 and ch.check_int("epochs", np.int64(3), 0) == 3
    for bad in (True, 2.0, -1, "3"):
        with pytest.raises(ValueError, match="^epochs must be an integer >= 0"):
            ch.check_int("epochs", bad, 0)


def test_check_precision():
    assert ch.check_precision("highest") == "highest"
    assert ch.check_precision(jax.lax.Precision.HIGH) is jax.lax.Precision.HIGH
    with pytest.raises(ValueError, match="^precision must be one of"):
        ch.check_precision("best")


def test_float_dtype_follows_inputs_and_x64(x64):
    assert ch.float_dtype(np.ones(2, np.int32)) == jnp.float64  # integers -> default float (x64)
    assert ch.float_dtype(jnp.ones(2, jnp.float32), 1.0) == jnp.float32  # a Python float is weak
    assert ch.float_dtype(dtype="float32") == jnp.float32
    with pytest.raises(ValueError, match="^dtype must be a floating dtype"):
        ch.float_dtype(dtype="int32")


def test_float_dtype_default_is_float32():
    assert ch.float_dtype(1, 2) == jnp.float32
    assert ch.float_dtype(dtype="float64") == jnp.float32  # canonicalised without x64


def test_check_broadcastable_names_every_shape():
    assert ch.check_broadcastable(a=np.ones((3, 1)), b=np.ones(4)) == (3, 4)
    with pytest.raises(ValueError, match=r"a\(3,\), b\(4,\)"):
        ch.check_broadcastable(a=np.ones(3), b=np.ones(4))
