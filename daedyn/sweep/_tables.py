"""The one loader of sweep specs and run configs: a ``.toml``, ``.json`` or ``.yaml`` file to a
table of plain data, bounded (size, nesting, no duplicate keys, no YAML aliases) and with short
error messages (docs/errors.md, "Guarantees")."""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping

__all__ = ["read_table", "short_text", "MAX_TABLE_BYTES", "MAX_TABLE_DEPTH"]

#: Bounds of the one loader of specs and configs (:func:`read_table`): the file's size, the
#: nesting of its tables and lists, and the length of an error message quoting it.
MAX_TABLE_BYTES = 4 * 2**20
MAX_TABLE_DEPTH = 32
_MAX_MESSAGE = 300


def short_text(text, limit: int = _MAX_MESSAGE) -> str:
    """``text`` on one line, cut to ``limit`` characters (a message must not quote a whole file)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _no_duplicates(pairs):
    """``object_pairs_hook`` of :func:`json.loads`: a key given twice is an error, not the last value."""
    out = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {short_text(repr(key), 60)}")
        out[key] = value
    return out


def _depth(data) -> int:
    """The nesting depth of parsed tables and lists (iterative: no recursion limit of its own)."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, Mapping):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, level)
        if level > MAX_TABLE_DEPTH:
            break
        stack.extend((c, level + 1) for c in children)
    return deepest


def _yaml_loader():
    """PyYAML's SafeLoader without anchors and aliases (``&a``/``*a``: a 400-byte file could expand to
    gigabytes), refusing duplicate keys and nesting deeper than :data:`MAX_TABLE_DEPTH`."""
    import yaml

    class Loader(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent, index):
            event = self.peek_event()
            line = event.start_mark.line + 1
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
                raise ValueError(f"line {line}: YAML anchors and aliases (& and *) are not accepted; "
                                 "write the values out")
            self.depth += 1
            if self.depth > MAX_TABLE_DEPTH:
                raise ValueError(f"line {line}: nested deeper than {MAX_TABLE_DEPTH} levels")
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                try:
                    if key in seen:
                        raise ValueError(f"line {key_node.start_mark.line + 1}: duplicate key "
                                         f"{short_text(repr(key), 60)}")
                    seen.add(key)
                except TypeError:  # an unhashable key: the base class says so
                    break
            return super().construct_mapping(node, deep)

    return Loader


def read_table(path: str | os.PathLike, what: str = "spec") -> dict:
    """The top-level table of a ``.toml``, ``.json`` or (with PyYAML) ``.yaml``/``.yml`` file: the
    one loader of sweep specs and of run configs (``daedyn train|tune|simulate --config``).

    What it accepts is plain data, bounded: at most :data:`MAX_TABLE_BYTES` (4 MiB) and
    :data:`MAX_TABLE_DEPTH` (32) levels of nested tables and lists; a key given twice is refused in
    every format (TOML refuses it itself; JSON and YAML would silently keep the last value); YAML
    anchors and aliases are refused (they let a few hundred bytes expand to gigabytes). Error
    messages quote at most a few hundred characters of the file.

    Raises:
      ValueError: another extension, a file too large, too deep, with a duplicate key or an alias,
        one that does not parse, or no table at top level (naming ``what`` and the file).
        OSError: the file cannot be read.
    """
    path = os.fspath(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".toml", ".json", ".yaml", ".yml"):
        raise ValueError(f"{what} file must end in .toml, .json, .yaml or .yml; got {short_text(repr(path))}")
    with open(path, "rb") as f:
        raw = f.read(MAX_TABLE_BYTES + 1)
    if len(raw) > MAX_TABLE_BYTES:
        raise ValueError(f"{what} file {path!r} is larger than {MAX_TABLE_BYTES // 2**20} MiB; a {what} "
                         "holds settings, not data (give long axes as {linspace = [a, b, num]})")
    kind = "YAML" if ext in (".yaml", ".yml") else ext[1:].upper()
    try:
        if ext == ".toml":
            data = tomllib.loads(raw.decode())
        elif ext == ".json":
            data = json.loads(raw, object_pairs_hook=_no_duplicates)
        else:
            try:
                import yaml
            except ImportError:
                raise ValueError("YAML specs need PyYAML (pip install pyyaml); use TOML or JSON") from None
            try:
                data = yaml.load(raw, Loader=_yaml_loader())  # noqa: S506 (a SafeLoader subclass)
            except yaml.YAMLError as err:
                raise ValueError(str(err)) from None
    except (ValueError, RecursionError) as err:  # also UnicodeDecodeError, TOMLDecodeError, JSONDecodeError
        if "PyYAML" in str(err):
            raise
        deep = isinstance(err, RecursionError)
        reason = f"nested too deeply (more than {MAX_TABLE_DEPTH} levels)" if deep else short_text(err)
        raise ValueError(f"{what} file {path!r} is not valid {kind}: {reason}") from None
    if _depth(data) > MAX_TABLE_DEPTH:
        raise ValueError(f"{what} file {path!r} is nested more than {MAX_TABLE_DEPTH} levels deep")
    if not isinstance(data, Mapping):
        raise ValueError(f"{what} file {path!r} must hold a table at top level")
    return dict(data)
