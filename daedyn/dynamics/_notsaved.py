"""Fields a trajectory did not save: a placeholder that fails loudly when used.

:func:`daedyn.dynamics.scalar_gd` saves only the fields asked for (``observables``; by default the
mapping ``w`` alone, the quantity of the paper and the one a dense run can afford to write at the
recursion's speed). Each other field of its :class:`~daedyn.dynamics.ScalarTrajectory` is a
:class:`NotSaved` placeholder instead of an array. Why not None: ``traj.loss`` being None fails far
from the cause (``TypeError: 'NoneType' object is not subscriptable``), or not at all (``x is None``
branches, plots that skip it). A :class:`NotSaved` raises :class:`NotSavedError` naming the field
and the fix at the first use: attribute access (``.shape``), ``numpy.asarray`` / ``jnp.asarray`` /
any jnp or NumPy function, arithmetic and comparisons, indexing, ``len``, ``iter``, ``bool``,
``float``. The error is both an ``AttributeError`` (so ``hasattr(traj.loss, "shape")`` is False and
library probes pass over it) and a ``ValueError`` (a value used that was never computed).

Like None, it is a JAX pytree node without children: ``jit``, ``vmap``, ``jax.tree_util.tree_map``
and ``jax.device_get`` over a trajectory see only the saved arrays and give the placeholders back.
Its repr is ``<not saved: loss>``; two placeholders are equal when they describe the same field.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax

__all__ = ["NotSaved", "NotSavedError", "is_saved", "resolve_observables"]


class NotSavedError(AttributeError, ValueError):
    """A field of a trajectory that was not saved was used (see :class:`NotSaved`)."""


class NotSaved:
    """Placeholder for the field ``name`` of a trajectory that was not saved.

    Args:
      name: the field (e.g. ``"loss"``).
      saved: the fields that were saved (for the hint in the error).
      where: the trajectory type, and ``call`` the function that made it (for the error).
    Example:
      >>> ns = NotSaved("loss", saved=("w",))
      >>> ns
      <not saved: loss>
      >>> try:
      ...     ns + 1
      ... except NotSavedError as e:
      ...     print(e)
      ScalarTrajectory.loss was not saved (saved: w): pass observables=("w", "loss") (or "all") to scalar_gd
    """

    __slots__ = ("_key",)

    def __init__(self, name: str, saved: Sequence[str] = (), where: str = "ScalarTrajectory",
                 call: str = "scalar_gd"):
        object.__setattr__(self, "_key", (str(name), tuple(saved), str(where), str(call)))

    @property
    def name(self) -> str:
        """The field that was not saved."""
        return self._key[0]

    def error(self) -> NotSavedError:
        """The error raised on any use, naming the field and the fix."""
        name, saved, where, call = self._key
        ask = ", ".join(f'"{f}"' for f in (*saved, name)) + ("," if not saved else "")
        got = f" (saved: {', '.join(saved)})" if saved else ""
        return NotSavedError(f'{where}.{name} was not saved{got}: pass observables=({ask}) (or "all") '
                             f'to {call}')

    def __repr__(self) -> str:
        return f"<not saved: {self.name}>"

    def __getattr__(self, attr):
        if attr == "_key":  # not set yet (a half-built copy): plain lookup failure
            raise AttributeError(attr)
        raise self.error()

    def __setattr__(self, attr, value):
        raise self.error()

    def __eq__(self, other):
        if isinstance(other, NotSaved):
            return self._key == other._key
        raise self.error()

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash(self._key)

    def __reduce__(self):
        return NotSaved, self._key


def _refuse(self, *args, **kwargs):
    raise self.error()


# every way of using a value: arithmetic (both sides), comparisons, conversion, containers, NumPy / JAX
for _op in ("add sub mul truediv floordiv mod divmod pow matmul and or xor lshift rshift "
            "radd rsub rmul rtruediv rfloordiv rmod rdivmod rpow rmatmul rand ror rxor rlshift rrshift "
            "neg pos abs invert lt le gt ge getitem setitem len iter contains bool float int index complex "
            "round array array_ufunc array_function jax_array").split():
    setattr(NotSaved, f"__{_op}__", _refuse)
del _op

NotSaved.__module__ = NotSavedError.__module__ = "daedyn.dynamics"  # their public home (tracebacks, pickles)
jax.tree_util.register_pytree_node(NotSaved, lambda x: ((), x._key), lambda key, _: NotSaved(*key))


def is_saved(x) -> bool:
    """Whether a trajectory field holds values (is not a :class:`NotSaved` placeholder)."""
    return not isinstance(x, NotSaved)


def resolve_observables(observables, allowed: tuple[str, ...], default: tuple[str, ...]) -> tuple[str, ...]:
    """The fields to save, in the order of ``allowed``: ``None`` means ``default``, ``"all"`` means
    ``allowed``, a name or sequence of names must be a non-empty subset of ``allowed``."""
    if observables is None:
        return default
    if isinstance(observables, str) and observables == "all":
        return allowed
    observables = (observables,) if isinstance(observables, str) else tuple(observables)
    bad = [o for o in observables if o not in allowed]
    if bad or not observables:
        raise ValueError(f'observables must be "all" or a non-empty subset of {allowed}; got {observables!r}')
    return tuple(o for o in allowed if o in observables)
