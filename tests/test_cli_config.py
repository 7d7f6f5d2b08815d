"""Run configs: --config FILE (the sweep specs' loader and range table; the command line wins) and
--print-config (TOML that reads back to the same options); --save-every adapts to --epochs."""

import pytest
from cli_helpers import run_cli

from daedyn.cli import build_parser


def _write(tmp_path, text, name="run.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_config_then_command_line_and_print_config_round_trip(tmp_path, capsys):
    cfg = _write(tmp_path, 'epochs = 250\nalpha = 0.02\nlam = [1, 2]\n"save-every" = 50\nquiet = true\n')
    rc, out, err = run_cli(["simulate", "--config", cfg, "--alpha", "0.05", "--print-config"], capsys)
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("# daedyn simulate")
    want = {"epochs = 250", "alpha = [0.05]", "lam = [1.0, 2.0]", "save_every = 50", "quiet = true"}
    assert want <= set(lines)
    again = _write(tmp_path, out, "resolved.toml")  # the printed TOML is a config giving the same options
    rc, out2, _ = run_cli(["simulate", "--config", again, "--print-config"], capsys)
    assert rc == 0 and out2 == out


def test_config_runs_the_command(tmp_path, capsys):
    cfg = _write(tmp_path, "epochs = 20\nsave_every = 10\neps = [0.5]\nw0_is_not_an_option = 1\n")
    rc, _, err = run_cli(["simulate", "--config", cfg], capsys)
    assert rc == 2 and "unknown option 'w0_is_not_an_option' for daedyn simulate" in err
    cfg = _write(tmp_path, "epochs = 20\nsave_every = 10\neps = [0.5]\njson = true\n")
    rc, out, err = run_cli(["simulate", "--config", cfg], capsys)
    assert rc == 0 and '"epochs": 20' in out and err == ""


@pytest.mark.parametrize("text, code, words", [
    ("alpha = -1\n", 2, "--config {}: 'alpha': alpha must lie in (0, inf); got -1"),  # the sweep range table
    ("quiet = 1\n", 2, "'quiet' is a flag: use true or false"),
    ("epochs = \n", 2, "is not valid TOML"),
    ("hidden = [1, 2]\n", 2, "argument --hidden: invalid int value"),  # argparse's own validation
])
def test_bad_configs_are_usage_errors(text, code, words, tmp_path, capsys):
    cfg = _write(tmp_path, text)
    rc, _, err = run_cli(["train", "--config", cfg], capsys)
    assert rc == code and words.format(cfg) in err


def test_missing_config_file_exits_1(tmp_path, capsys):
    rc, _, err = run_cli(["tune", "--config", str(tmp_path / "nope.toml")], capsys)
    assert rc == 1 and "No such file or directory" in err


@pytest.mark.parametrize("epochs, every", [(1000, 100), (250, 50), (10, 10), (7, 7), (101, 1)])
def test_train_save_every_adapts_to_epochs(epochs, every):
    from daedyn.cli import train

    args = build_parser("train").parse_args(["train", "--epochs", str(epochs)])
    train._check(args)
    assert args.save_every == every and epochs % every == 0


def test_print_config_shows_the_adapted_save_every(capsys):
    rc, out, _ = run_cli(["train", "--epochs", "250", "--print-config"], capsys)
    assert rc == 0 and "save_every = 50" in out.splitlines() and "resolve_defaults" not in out
