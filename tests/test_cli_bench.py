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


class _Stream:
    def __init__(self, tty):
        self.text, self.tty = "", tty

    def isatty(self):
        return self.tty

    def write(self, s):
        self.text += s

    def flush(self):
        pass


def test_progress_bar_redraws_on_a_terminal_and_prints_lines_elsewhere():
    from daedyn._progress import progress_bar

    tty = _Stream(True)
    report = progress_bar("epochs", stream=tty)
    for done in (25, 50, 100):
        report(done, 100)
    assert tty.text.count("\r") == 3 and tty.text.endswith("done\n") and tty.text.count("\n") == 1
    assert "[#####---------------] 25/100 epochs (25%)" in tty.text
    log = _Stream(False)
    report = progress_bar("chunks", stream=log, min_interval=0.0)
    for done in (1, 2, 4):
        report(done, 4)
    lines = log.text.splitlines()
    assert len(lines) == 3 and "\r" not in log.text and lines[-1].endswith("done")
    assert "2/4 chunks (50%)" in lines[1]


def test_progress_bar_throttles_lines_off_a_terminal_and_draws_the_end_once():
    from daedyn._progress import progress_bar

    log = _Stream(False)
    report = progress_bar("epochs", stream=log, min_interval=3600.0)
    for done in (10, 20, 30, 40, 40):  # the first line, then nothing for an hour, then the end once
        report(done, 40)
    lines = log.text.splitlines()
    assert len(lines) == 2 and "10/40 epochs" in lines[0] and lines[1].endswith("done")


def test_sweep_progress_records_render_as_chunks_with_throughput():
    from types import SimpleNamespace

    from daedyn._progress import progress_bar, sweep_callback

    log = _Stream(False)
    show = sweep_callback(progress_bar("chunks", stream=log, min_interval=0.0))
    show(SimpleNamespace(chunks_done=1, chunks_total=2, points_per_s=1234.0, final=False))
    show(SimpleNamespace(chunks_done=2, chunks_total=2, points_per_s=1500.0, final=False))
    show(SimpleNamespace(chunks_done=2, chunks_total=2, points_per_s=1500.0, final=True))
    lines = log.text.splitlines()
    assert len(lines) == 2 and "1/2 chunks (50%)  1,234 traj/s" in lines[0]
    assert "2/2 chunks (100%)" in lines[1] and lines[1].endswith("done")
