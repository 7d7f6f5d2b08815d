"""docs/glossary.md against the code (issue 28, deliverable 2): every subcommand's options and every
public signature use the glossary's one name per concept, an option is its keyword in kebab case,
and every old spelling is hidden yet still works (a stderr note on the command line, a
DeprecationWarning in Python)."""

import importlib
import inspect
import pathlib
import re
import warnings

import pytest

from daedyn.cli import build_parser
from daedyn.cli._options import Deprecated

GLOSSARY = pathlib.Path(__file__).resolve().parents[1] / "docs" / "glossary.md"
PUBLIC = ("theory", "dynamics", "spectrum", "data", "noise", "models", "train", "tune", "sweep", "figures",
          "schedules", "diffusion", "crosscheck")


def _rows() -> dict[str, tuple[str | None, list[str]]]:
    """name -> (option or None, old spellings) from the glossary's tables."""
    rows = {}
    for line in GLOSSARY.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 4:
            name, option, _, old = cells
            name = name.strip("`")
            assert name not in rows, f"{name} has two rows"
            rows[name] = (None if option.strip() == "—" else option.strip("` "),
                          re.findall(r"`([^`]+)`", old))
    return rows


ROWS = _rows()


def _subparsers():
    return build_parser().subcommands


def _public_callables():
    """(qualified name, callable) of every public function and every public method of a public class."""
    mods = [importlib.import_module(f"daedyn.{m}") for m in PUBLIC]
    out = [("daedyn.plan", importlib.import_module("daedyn._plan").plan)]
    for mod in mods:
        for name in mod.__all__:
            obj = getattr(mod, name)
            if inspect.isclass(obj):
                out += [(f"{mod.__name__}.{name}.{k}", v) for k, v in vars(obj).items()
                        if inspect.isfunction(v) and not k.startswith("_")]
            elif callable(obj) and (inspect.isfunction(obj) or hasattr(obj, "__wrapped__")):
                out.append((f"{mod.__name__}.{name}", obj))
    return out


def test_the_glossary_parses():
    assert len(ROWS) > 200  # measured 244 rows; a broken table format would parse few
    for name, (option, _) in ROWS.items():  # an option is its name in kebab case
        assert option is None or option == "--" + name.replace("_", "-"), (name, option)


def test_every_subcommand_option_is_in_the_glossary():
    missing, hidden = [], []
    for command, sub in _subparsers().items():
        for action in sub._actions:
            for opt in action.option_strings:
                if not opt.startswith("--") or opt in ("--help", "--version"):
                    continue
                name = opt[2:].replace("-", "_")
                if isinstance(action, Deprecated):
                    hidden.append((command, opt, action.new))
                elif ROWS.get(name, (None,))[0] != opt:
                    missing.append(f"{command} {opt}")
    assert not missing, "options without a glossary row (add one, or use the glossary's name): " + \
        ", ".join(missing)
    olds = {o for _, (_, old) in ROWS.items() for o in old}
    for command, opt, new in hidden:  # every hidden spelling is listed as old, beside its new name
        assert f"{command} {opt}" in olds, (command, opt)
        assert f"{command} {opt}" in ROWS[new[2:].replace("-", "_")][1], (command, opt, new)


def test_every_public_keyword_is_in_the_glossary():
    missing = sorted({f"{qual}({p.name})" for qual, fn in _public_callables()
                      for p in inspect.signature(fn).parameters.values()
                      if p.name not in ("self", "cls") and p.name not in ROWS
                      and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)})
    assert not missing, "public keywords without a glossary row: " + ", ".join(missing)


def test_old_python_spellings_are_listed_and_hidden():
    renamed = {}
    for qual, fn in _public_callables():
        for old, new in getattr(fn, "__deprecated_keywords__", {}).items():
            renamed[qual.removeprefix("daedyn.") + f"({old}=)"] = new
            assert old not in inspect.signature(fn).parameters and new in inspect.signature(fn).parameters
    listed = {o: name for name, (_, old) in ROWS.items() for o in old if "(" in o}
    assert renamed == listed  # each rename in the code is in the glossary under its new name, and back


def test_cli_options_visible_nowhere_under_an_old_spelling():
    olds = {o.split()[1] for _, (_, old) in ROWS.items() for o in old if o.split()[0] in _subparsers()
            and len(o.split()) == 2}
    for command, sub in _subparsers().items():
        visible = {o for a in sub._actions if not isinstance(a, Deprecated) for o in a.option_strings}
        # --p stays the corruption rate of train/plan/simulate; it is old only in tune (now --p0)
        assert not visible & olds - {"--p"}, (command, visible & olds)
    assert "--p" not in {o for a in _subparsers()["tune"]._actions if not isinstance(a, Deprecated)
                         for o in a.option_strings}


@pytest.mark.parametrize("command, old, new", [
    (["theory", "--lam", "1"], ["--f", "0.5"], ["--fraction", "0.5"]),
    (["simulate", "--matrix"], ["--scale", "0.3"], ["--init-scale", "0.3"]),
    (["tune"], ["--n-heldout", "7"], ["--heldout", "7"]),
    (["tune"], ["--schedule", "piecewise:3"], ["--pieces", "3"]),
    (["tune"], ["--p", "0.4"], ["--p0", "0.4"]),
    (["diffusion", "tune"], ["--steps", "9"], ["--max-steps", "9"]),
    (["bench"], ["--json-out", "b.json"], ["--out", "b.json"]),
])
def test_old_cli_spellings_parse_to_the_same_options_with_a_note(command, old, new, capsys):
    parser = build_parser(command[0])
    Deprecated._said.clear()
    a = parser.parse_args(command + old)
    err = capsys.readouterr().err
    assert f"deprecated: {old[0]} is now {new[0]}" in err and err.count("\n") == 1
    assert vars(a) == vars(parser.parse_args(command + new))
    assert capsys.readouterr().err == ""  # the new spelling says nothing


def test_old_python_spellings_work_with_a_deprecation_warning():
    import jax.random as jr
    import numpy as np

    from daedyn import dynamics, models, theory

    new = float(theory.learning_time(0.5, 1.0, 1.0, w0=1e-6, tau=100.0))
    with pytest.warns(DeprecationWarning, match=r"learning_time\(f=...\) is deprecated: use fraction="):
        old = float(theory.learning_time(f=0.5, lam=1.0, eps=1.0, w0=1e-6, tau=100.0))
    assert old == new  # the same function, the keyword moved
    with pytest.warns(DeprecationWarning, match="use init_scale="):
        w_old = dynamics.random_init(3, 2, scale=0.1, key=jr.key(0))
    np.testing.assert_array_equal(w_old[0], dynamics.random_init(3, 2, init_scale=0.1, key=jr.key(0))[0])
    with pytest.warns(DeprecationWarning, match="use init_scale="):
        models.init_autoencoder(3, 2, key=jr.key(0), scale=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new names warn nothing
        models.init_autoencoder(3, 2, key=jr.key(0), init_scale=0.1)
    with pytest.raises(TypeError, match="got both f= .deprecated. and fraction="):
        theory.learning_time(0.5, 1.0, f=0.5, fraction=0.5, w0=1e-6)
