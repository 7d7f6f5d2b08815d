"""scalar_gd's default saves the mapping w alone; every other field is a NotSaved placeholder that
fails loudly, naming the fix, and passes through jit, vmap and jax.tree_util like None."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from daedyn import dynamics
from daedyn.dynamics import NotSaved, NotSavedError, scalar_gd
from daedyn.dynamics import _scalar as scalar_mod

LAM = jnp.array([0.5, 1.0, 2.0])[:, None]
EPS = jnp.array([0.0, 1.0])
KW = dict(alpha=0.05, gamma=0.01, n=2.0, epochs=20)
UNSAVED = ("w1", "w2", "weight_norm", "loss")

USES = {  # every way a value gets used; each must raise the clear error
    "attribute": lambda x: x.shape,
    "np.asarray": np.asarray,
    "jnp.asarray": jnp.asarray,
    "jnp function": lambda x: jnp.mean(x),
    "np function": lambda x: np.max(x),
    "arithmetic": lambda x: x * 2,
    "reflected arithmetic": lambda x: 1.0 - x,
    "with an array": lambda x: jnp.ones(3) + x,
    "comparison": lambda x: x > 0,
    "equality": lambda x: x == 0,
    "indexing": lambda x: x[..., -1],
    "len": len,
    "bool": bool,
    "float": float,
    "iter": list,
}


def test_default_saves_only_w_and_the_rest_fail_naming_the_fix():
    tr = scalar_gd(LAM, EPS, 0.2, -0.1, **KW)
    assert tr.w.shape == (3, 2, 21) and tr.t.shape == (21,)
    for name in UNSAVED:
        field = getattr(tr, name)
        assert isinstance(field, NotSaved) and field.name == name and repr(field) == f"<not saved: {name}>"
        assert not hasattr(field, "shape")  # an AttributeError: library probes pass over it
        msg = f'ScalarTrajectory.{name} was not saved (saved: w): pass observables=("w", "{name}") (or "all")'
        for use, f in USES.items():
            with pytest.raises(NotSavedError) as info:
                f(field)
            assert str(info.value).startswith(msg), (name, use, str(info.value))
            assert isinstance(info.value, ValueError) and isinstance(info.value, AttributeError)
    # the suggestion adds the field to what was asked for
    some = scalar_gd(LAM, EPS, 0.2, -0.1, observables=("w2", "loss"), **KW)
    with pytest.raises(ValueError, match=r'observables=\("w2", "loss", "w1"\) \(or "all"\) to scalar_gd'):
        some.w1 + 1
    assert set(tr.to_xarray().data_vars) == {"w"}


def test_default_trajectory_through_jit_vmap_and_tree_util():
    tr = scalar_gd(LAM, EPS, 0.2, -0.1, **KW)
    # jit returning a trajectory: the traced call transposes instead of relaying out, the values are
    # the same (bitwise, as in test_scalar_layout.py)
    jitted = jax.jit(lambda lam, eps: scalar_gd(lam, eps, 0.2, -0.1, check_stability=False, **KW))(LAM, EPS)
    np.testing.assert_array_equal(jitted.w, tr.w)
    assert jitted.loss == tr.loss and isinstance(jitted.w1, NotSaved)
    # vmap over eps: one run per eps, the same elementwise recursion as the broadcast batch
    vm = jax.vmap(lambda e: scalar_gd(LAM[:, 0], e, 0.2, -0.1, check_stability=False, **KW))(EPS)
    np.testing.assert_array_equal(vm.w, jnp.moveaxis(tr.w, 1, 0))
    assert isinstance(vm.weight_norm, NotSaved)
    # tree_util: the placeholders have no leaves and come back unchanged
    leaves, treedef = jax.tree_util.tree_flatten(tr)
    assert len(leaves) == 2 and leaves[1] is tr.w
    last = jax.tree_util.tree_map(lambda x: x[..., -1], tr)
    assert last.w.shape == (3, 2) and last.loss == tr.loss and treedef == jax.tree_util.tree_structure(last)
    host = jax.device_get(tr)
    assert isinstance(host.w, np.ndarray) and isinstance(host.w2, NotSaved)
    # a trajectory as the argument of a jitted function, and a gradient through the default call
    assert jax.jit(lambda t: t.w[..., -1])(tr).shape == (3, 2)
    g = jax.grad(lambda e: scalar_gd(1.0, e, 0.2, 0.3, check_stability=False, **KW).w[-1])(1.0)
    assert np.isfinite(g) and g < 0  # more noise, smaller mapping


@pytest.mark.parametrize("save_every", [1, 50])  # "auto" with all five fields: "scan", then "jnp" (CPU)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_all_equals_the_old_default_bitwise(save_every, dtype, x64, monkeypatch):
    lam, eps = LAM.astype(dtype), EPS.astype(dtype)
    kw = dict(KW, save_every=save_every, epochs=100)
    new = scalar_gd(lam, eps, 0.2, -0.1, observables="all", **kw)
    listed = scalar_gd(lam, eps, 0.2, -0.1, observables=scalar_mod.OBSERVABLES, **kw)
    # the old default: observables=None meant all five, for the backend choice too
    monkeypatch.setattr(scalar_mod, "DEFAULT_OBSERVABLES", scalar_mod.OBSERVABLES)
    old = scalar_gd(lam, eps, 0.2, -0.1, **kw)
    for name in ("t",) + scalar_mod.OBSERVABLES:
        a, b, c = (np.asarray(getattr(x, name)) for x in (new, listed, old))
        assert a.dtype == dtype and a.shape == c.shape
        np.testing.assert_array_equal(a, c, err_msg=name)  # bit for bit: the same program
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_placeholder_pickles_and_compares_by_field():
    import pickle

    ns = dynamics.NotSaved("loss", saved=("w",))
    assert pickle.loads(pickle.dumps(ns)) == ns and hash(ns) == hash(NotSaved("loss", saved=("w",)))
    assert ns != NotSaved("w1", saved=("w",))
    with pytest.raises(NotSavedError):
        ns.name = "w"  # immutable
