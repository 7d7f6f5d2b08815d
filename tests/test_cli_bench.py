"""CLI pieces: `daedyn bench` usage errors (exit 2, one line); the shared progress reporter."""

import pytest

from daedyn.cli import main


def test_unknown_benchmark_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--only", "closed_form,nosuch"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("daedyn bench: error: unknown benchmark(s) ['nosuch']")
    assert "closed_form" in err[-1]  # the valid names are listed


class _Stream:
    def __init__(self, tty):
        self.text, self.tty = "", tty

    def isatty(self):
        return self.tty

    def write(self, s):
        self.text += s

    def flush(self):
        pass


def test_progress_reporter_redraws_on_a_terminal_and_prints_lines_elsewhere():
    from daedyn.cli import progress_reporter

    tty = _Stream(True)
    report = progress_reporter("epoch", stream=tty)
    for done in (25, 50, 100):
        report(done, 100)
    assert tty.text.count("\r") == 3 and tty.text.endswith("done\n") and tty.text.count("\n") == 1
    assert "[#####---------------] epoch 25/100 (25%)" in tty.text
    log = _Stream(False)
    report = progress_reporter("chunk", stream=log, min_interval=0.0)
    for done in (1, 2, 4):
        report(done, 4)
    lines = log.text.splitlines()
    assert len(lines) == 3 and "\r" not in log.text and lines[-1].endswith("done")
    assert "chunk 2/4 (50%)" in lines[1]
