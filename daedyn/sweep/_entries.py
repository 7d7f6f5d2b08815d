"""What the runner needs to know about a sweep function, and how a "module:function" is found.

A sweep function takes keyword arguments (one per axis and constant) and returns a dict, a
NamedTuple or any pytree of arrays. With ``batching="vmap"`` it is written for ONE grid point
(the runner vmaps it over a chunk); with ``"broadcast"`` it receives (B,) arrays. Trailing
dimensions of an output (time, direction) are named by :func:`entry_point` metadata or by the
spec's ``dims``. This module knows no particular function: the built-ins are in ``_builtins``.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

__all__ = ["EntryInfo", "entry_point", "entry_info", "import_function", "parameters"]


class EntryInfo(NamedTuple):
    """What the sweep runner needs to know about a function besides its signature.

    Attributes:
      batching: ``"vmap"`` or ``"broadcast"`` (see module docstring).
      static: parameters that fix array shapes (epochs, a time grid): constants only.
      switch: parameters that must be Python values (they pick code, e.g. a network's depth) but
        leave output shapes alone: they may be sweep axes. Each value compiles its own branch
        (``lax.switch``); the planner keeps one value per chunk, so a chunk runs one branch.
      dims: ``constants -> {output: dim names}`` for trailing output dimensions.
      coords: ``constants -> {dim: values}`` for those dimensions, computed from the settings
        (never by running the function).
      defaults: ``(axes, constants) -> {name: value}``, constants derived from the whole grid
        (e.g. an integration step small enough for every point), added when not given.
    """

    batching: str = "vmap"
    static: tuple[str, ...] = ()
    dims: Callable[[Mapping[str, Any]], Mapping[str, tuple[str, ...]]] | None = None
    coords: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None
    defaults: Callable[[Mapping[str, Any], Mapping[str, Any]], Mapping[str, Any]] | None = None
    switch: tuple[str, ...] = ()


def entry_point(*, batching: str = "vmap", static=(), dims=None, coords=None, defaults=None, switch=()):
    """Decorator attaching :class:`EntryInfo` to a sweep function (built-ins and users' own).

    Args:
      batching: ``"vmap"`` (written for one grid point) or ``"broadcast"`` (takes (B,) arrays).
      static: names of the shape-fixing parameters, allowed as constants only.
      switch: names of parameters taken as Python values that may still be sweep axes (one
        compiled branch per value; see :class:`EntryInfo`).
      dims, coords: dicts, or callables of the constants, naming the outputs' trailing
        dimensions and giving their coordinate values.
      defaults: ``(axes, constants) -> {name: value}`` for constants derived from the grid.
    Returns:
      A decorator returning the function itself, with the metadata attached.
    Raises:
      ValueError: ``batching`` is not ``"vmap"`` or ``"broadcast"``.
    Example:
      >>> @entry_point(dims={"w": ("t",)})
      ... def mine(lam, *, t):
      ...     return {"w": lam * t}
      >>> entry_info(mine).dims({})
      {'w': ('t',)}
    """
    if batching not in ("vmap", "broadcast"):
        raise ValueError(f"batching must be 'vmap' or 'broadcast'; got {batching!r}")

    def as_fn(x):
        return x if callable(x) or x is None else (lambda c, _x=x: _x)

    def wrap(fn):
        fn.__daedyn_sweep__ = EntryInfo(batching, tuple(static), as_fn(dims), as_fn(coords), defaults,
                                        tuple(switch))
        return fn
    return wrap


def entry_info(fn: Callable) -> EntryInfo:
    """The :class:`EntryInfo` attached by :func:`entry_point`, or the defaults."""
    return getattr(fn, "__daedyn_sweep__", EntryInfo())


def import_function(target: str) -> Callable:
    """The callable named ``"module:function"`` (``"module:Class.method"`` too), imported.

    Raises:
      ValueError: no ``":"``, a module that cannot be imported, a missing or non-callable name.
    """
    mod_name, colon, attr = target.partition(":")
    if not colon or not mod_name or not attr:
        raise ValueError(f"function {target!r} must be 'module:function'")
    try:
        obj = importlib.import_module(mod_name)
    except ImportError as err:
        raise ValueError(f"function {target!r}: cannot import module {mod_name!r} ({err})") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"function {target!r}: module {mod_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"function {target!r} is not callable")
    return obj


def parameters(fn: Callable) -> tuple[set[str], set[str], bool]:
    """(all keyword names, required names, accepts ``**kwargs``) of ``fn``; the names include the
    deprecated spellings of ``daedyn._checks.renamed`` (a required name may come under its old one)."""
    sig = inspect.signature(fn)
    names, required, var_kw = set(getattr(fn, "__deprecated_keywords__", {})), set(), False
    for p in sig.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            var_kw = True
        elif p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            names.add(p.name)
            if p.default is p.empty:
                required.add(p.name)
    return names, required, var_kw
