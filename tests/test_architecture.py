"""The package's import graph: no cycles (module- or function-level imports), and no package imports
another package's private module (docs/architecture.md). Read from the source with ``ast``: nothing
is imported, so the test is fast and sees function-level imports too."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "daedyn"
# Top-level private modules that are shared infrastructure (docs/architecture.md, "Files").
SHARED = {"_linear", "_checks", "_numerics", "_progress", "_checkpoint", "_corruption", "_kernels",
          "_extras", "_cache", "_xarray"}


def _modules() -> dict[str, pathlib.Path]:
    out = {}
    for p in ROOT.rglob("*.py"):
        parts = list(p.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _targets(mod: str, path: pathlib.Path, node, mods) -> list[str]:
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:
            pkg = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
            pkg = pkg[: len(pkg) - node.level + 1]
            base = ".".join(pkg + ([base] if base else []))
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
    out = []
    for t in names:
        while t not in mods and "." in t:
            t = t.rsplit(".", 1)[0]
        if t in mods and t != mod:
            out.append(t)
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {m: {t for node in ast.walk(ast.parse(p.read_text()))
                if isinstance(node, ast.Import | ast.ImportFrom)
                for t in _targets(m, p, node, mods)}
            for m, p in mods.items()}


def _package(m: str) -> str:
    return ".".join(m.split(".")[:2])


def test_no_package_imports_another_packages_private_module():
    bad = []
    for m, targets in _graph().items():
        for t in targets:
            parts = t.split(".")
            if len(parts) >= 2 and parts[1].startswith("_") and parts[1] not in SHARED:
                bad.append(f"{m} -> {t} (a private top-level module that is not shared infrastructure)")
            if any(x.startswith("_") for x in parts[2:]) and _package(t) != _package(m):
                bad.append(f"{m} -> {t}")
    assert not bad, "imports of another package's private module:\n" + "\n".join(sorted(bad))


def _cycles(graph):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    cycles = _cycles(_graph())
    assert not cycles, "import cycles (strongly connected modules):\n" + "\n".join(map(str, cycles))


def test_the_checker_sees_a_cycle_and_a_private_import():
    """The checks can fail: a two-module cycle and a private cross-package edge are found."""
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]
    assert _package("daedyn.theory._deep") != _package("daedyn.dynamics._scalar")


@pytest.mark.parametrize("package",
                         ["dynamics", "theory", "train", "tune", "sweep", "figures", "data", "cli"])
def test_every_package_declares_its_public_names(package):
    init = ROOT / package / "__init__.py"
    tree = ast.parse(init.read_text())
    assert any(isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in n.targets)
               for n in tree.body), f"daedyn.{package} has no __all__"


def test_public_names_fit_the_budget():
    """Issue 25: at most 170 public names across the public modules (250 before features became
    values; docs/migration.md lists every name that left)."""
    import importlib
    import pkgutil

    import daedyn

    mods = ["daedyn"] + [f"daedyn.{m.name}" for m in pkgutil.iter_modules(daedyn.__path__)
                         if not m.name.startswith("_")]
    counts = {m: len(getattr(importlib.import_module(m), "__all__", [])) for m in mods}
    assert sum(counts.values()) <= 170, counts
