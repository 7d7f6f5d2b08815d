"""Running ``daedyn`` in-process in tests."""

from daedyn.cli import main


def run_cli(argv, capsys):
    """(exit code, stdout, stderr) of ``daedyn <argv>``; argparse's SystemExit becomes the code."""
    try:
        rc = main(argv)
    except SystemExit as e:  # argparse: --help (0) and usage errors (2)
        rc = e.code
    out = capsys.readouterr()
    return rc, out.out, out.err
