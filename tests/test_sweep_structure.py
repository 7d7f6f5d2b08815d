"""The shape of daedyn.sweep: private modules behind an explicit ``__all__``, imports flowing one
way, adapters importing what they call at module top, no private name from another package."""

import ast
import pathlib

import pytest

import daedyn.sweep as sweep

PACKAGE = pathlib.Path(sweep.__file__).parent
MODULES = sorted(PACKAGE.glob("*.py"))
# Optional extras, imported where used so that the core works without them.
OPTIONAL = {"zarr", "zarr.codecs", "zarr.core.buffer", "zarr.core.sync", "xarray", "yaml"}


def _tree(path):
    return ast.parse(path.read_text(), filename=str(path))


def _imports(node):
    """(module, names) for every import statement below ``node``."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Import):
            for alias in sub.names:
                yield alias.name, ()
        elif isinstance(sub, ast.ImportFrom) and sub.level == 0 and sub.module:
            yield sub.module, tuple(a.name for a in sub.names)


def _sibling_imports(path):
    out = set()
    for module, names in _imports(_tree(path)):
        if module == "daedyn.sweep":
            out |= {n for n in names if (PACKAGE / f"{n}.py").exists()}
        elif module.startswith("daedyn.sweep."):
            out.add(module.rsplit(".", 1)[1])
    return out - {path.stem}


def test_modules_are_private_short_and_acyclic():
    names = {p.stem for p in MODULES}
    assert names - {"__init__"} and all(n.startswith("_") for n in names)
    for p in MODULES:
        assert len(p.read_text().splitlines()) <= 500, p.name
    graph = {p.stem: _sibling_imports(p) for p in MODULES if p.stem != "__init__"}
    done, order = set(), []
    while len(done) < len(graph):  # peel off modules whose imports are all placed: a cycle stalls
        ready = sorted(m for m, deps in graph.items() if m not in done and deps <= done)
        assert ready, f"import cycle among {sorted(set(graph) - done)}"
        done |= set(ready)
        order += ready
    assert order.index("_spec") < order.index("_plan") < order.index("_run")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_no_function_local_imports_and_no_foreign_private_names(path):
    tree = _tree(path)
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            local = {m for m, _ in _imports(fn)} - OPTIONAL
            assert not local, f"{path.name}:{fn.name} imports {sorted(local)} inside the function"
    for module, names in _imports(tree):
        parts = module.split(".")
        if parts[0] == "daedyn" and parts[1:2] != ["sweep"]:
            # daedyn's own shared helpers (daedyn._checks) are allowed; another package's are not
            private = [n for n in (*parts[2:], *names) if n.startswith("_")]
            assert not private, f"{path.name} imports private {private} from {module}"


def test_public_names_are_reexported_explicitly():
    assert len(set(sweep.__all__)) == len(sweep.__all__)
    for name in sweep.__all__:
        assert getattr(sweep, name) is not None
    public = {n for n in vars(sweep) if not n.startswith("_")}
    assert public == set(sweep.__all__)
    # the public API (docs/sweep.md); parse_memory, read_table and check_parameters are the
    # helpers the CLI needs (--max-memory, --config). docs/migration.md lists what went private.
    assert set(sweep.__all__) == {
        "ENTRY_POINTS", "PARAMETER_RANGES", "ParameterRange", "Progress", "SweepPlan", "SweepSpec",
        "SweepSummary", "as_spec", "entry_point", "load_spec", "open_results", "plan", "run",
        "parse_memory", "read_table", "check_parameters"}
    for name in ("EntryInfo", "HELD_COPIES", "NOT_RANGED", "OutputInfo", "STATUS_CODES", "read_log",
                 "resolve", "run_sweep"):
        assert not hasattr(sweep, name)  # private since the API was shrunk
