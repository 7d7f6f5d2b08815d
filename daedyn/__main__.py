"""``python -m daedyn`` is the ``daedyn`` command."""

if __name__ == "__main__":
    from daedyn.cli import main

    raise SystemExit(main())
