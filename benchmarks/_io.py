"""Writing a benchmark's JSON results so that none are lost: through a temporary file and a rename
(an interrupted or failed write leaves the previous file as it was), and on a failed write (disk
full, permission) the results go to stderr instead."""

from __future__ import annotations

import json
import os
import sys

from daedyn._checkpoint import atomic_write


def write_json(path: str | os.PathLike, obj, what: str = "benchmark results", **dumps) -> bool:
    """``json.dumps(obj, **dumps)`` to ``path`` atomically; True when written. On an ``OSError`` the
    text is printed to stderr with the reason, and False is returned (the run's results survive)."""
    text = json.dumps(obj, **dumps)
    try:
        with atomic_write(path, what) as tmp, open(tmp, "w") as f:
            f.write(text)
    except OSError as err:
        print(f"could not write {os.fspath(path)} ({err.strerror}); the {what}:\n{text}", file=sys.stderr)
        return False
    return True
