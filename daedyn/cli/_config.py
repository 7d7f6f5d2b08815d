"""Run configs: ``daedyn train|tune|simulate --config run.toml`` and ``--print-config``.

A config file is a table of option names (``save_every`` or ``save-every``) and values, read by
the sweep specs' own loader (:func:`daedyn.sweep.read_table`: TOML, JSON or YAML) and checked by
their range table (:func:`daedyn.sweep.check_parameters`). Its options are placed BEFORE the
command line's and the subcommand's own parser reads both, so every value gets exactly the
validation of the command line (types, choices, ranges) and an option given on the command line
overrides the file. ``--print-config`` prints the resolved options as TOML, usable as a config.
"""

from __future__ import annotations

import argparse
import json
import math

__all__ = ["resolve", "to_toml"]

_INTERNAL = frozenset({"func", "command", "config", "print_config", "resolve_defaults", "started"})


def _options(sub: argparse.ArgumentParser) -> dict[str, list[argparse.Action]]:
    out: dict[str, list[argparse.Action]] = {}
    for action in sub._actions:  # argparse keeps no public list of a parser's actions
        if action.option_strings and action.dest not in _INTERNAL and action.dest != "help":
            if getattr(action, "new", None):  # a deprecated spelling: its own key (an old config)
                out.setdefault(action.option_strings[0].lstrip("-").replace("-", "_"), []).append(action)
            else:
                out.setdefault(action.dest, []).append(action)
    return out


def _short(text: str, limit: int = 300) -> str:
    """``text`` on one line, at most ``limit`` characters (as the file loader cuts its messages)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _tokens(actions: list[argparse.Action], key: str, value, where: str) -> list[str]:
    """Command-line words that set ``key`` to ``value`` (flags: the option itself, or nothing)."""
    flags = [a for a in actions if a.nargs == 0]  # store_true / store_false / store_const
    if flags:
        if not isinstance(value, bool):
            raise ValueError(f"{where}: {key!r} is a flag: use true or false; got {_short(repr(value))}")
        for a in flags:
            if a.const == value:
                return [a.option_strings[-1]]
        return []  # the flag's default already is `value`
    if isinstance(value, (dict, type(None))):
        raise ValueError(f"{where}: {key!r} must be a number, a string, a boolean or a list; got "
                         f"{_short(repr(value))}")
    if isinstance(value, (list, tuple)):
        value = ",".join(str(v) for v in value)  # the comma lists of --lam 0,1,5
    return [f"{actions[0].option_strings[-1]}={value}"]  # "=": a negative number is a value


def resolve(sub: argparse.ArgumentParser, args: argparse.Namespace, words: list[str]) -> argparse.Namespace:
    """``args`` with the options of ``args.config`` under those of the command line ``words``.

    Raises:
      ValueError: an unknown option in the file, a flag that is not a boolean, a value out of
        the sweep range table (``"--config run.toml: 'alpha': alpha must lie in (0, inf); got -1"``),
        or a file the loader refuses. OSError: the file cannot be read.
    """
    if not args.config:
        return args
    from daedyn.sweep import check_parameters, read_table

    where = f"--config {args.config}"
    table = read_table(args.config, what="config")
    options = _options(sub)
    tokens, values = [], {}
    for key, value in table.items():
        dest = str(key).replace("-", "_")
        if dest not in options:
            known = ", ".join(sorted(options))
            raise ValueError(f"{where}: unknown option {_short(repr(key), 60)} for daedyn {args.command} "
                             f"(known: {known})")
        tokens += _tokens(options[dest], key, value, where)
        values[dest] = value
    check_parameters(values, where + ":")
    rest = words[words.index(args.command) + 1:]
    resolved = sub.parse_args(tokens + rest)  # the command line comes last: it wins
    resolved.command = args.command
    return resolved


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return ("inf" if v > 0 else "-inf") if math.isinf(v) else "nan" if math.isnan(v) else repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v))  # a TOML basic string (JSON's escapes are TOML's)


def to_toml(args: argparse.Namespace, skip=()) -> str:
    """The resolved options as TOML, one ``name = value`` per line (None and internals left out).

    Example:
      >>> print(to_toml(argparse.Namespace(command="train", alpha=0.01, lam=[0.0, 1.0], quiet=False,
      ...                                  dataset="mnist5k", n=None)), end="")
      # daedyn train: resolved options (use with --config)
      alpha = 0.01
      dataset = "mnist5k"
      lam = [0.0, 1.0]
      quiet = false
    """
    lines = [f"# daedyn {args.command}: resolved options (use with --config)"]
    for key, value in sorted(vars(args).items()):
        if key in _INTERNAL or key in skip or value is None or callable(value):
            continue
        lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"
