"""daedyn.tune.tune compiles its jitted L-BFGS step once per objective (not once more after the
first step, when optax's initial state would change weak types)."""

import jax.numpy as jnp

from daedyn import tune
from daedyn.tune import _optimise


def test_tune_step_compiles_once():
    def f(p):  # a new function: a new cache entry
        return jnp.sum((jnp.log(p["eps"]) - jnp.array([1.0, 2.0])) ** 2)

    before = _optimise._update._cache_size()
    r = tune.tune(f, {"eps": jnp.array([1.0, 1.0])}, max_steps=20)
    assert r.n_steps >= 2  # at least one step after the first: the one that used to recompile
    # measured 2 new entries before the state was strong-typed, 1 after
    assert _optimise._update._cache_size() - before == 1
