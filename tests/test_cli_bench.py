"""CLI pieces: `daedyn bench` usage errors (exit 2, one line); the one progress renderer
(daedyn._progress) that the subcommands draw with."""

import pytest

from daedyn.cli import main


def test_unknown_benchmark_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--only", "closed_form,nosuch"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("daedyn bench: error: unknown benchmark(s) ['nosuch']")
    assert "closed_form" in err[-1]  # the valid names are listed


# The progress bar's tests are in tests/test_progress.py (tqdm-based since issue 16).
