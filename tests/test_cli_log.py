"""``--log csv|tensorboard`` (issue 28, deliverable 3): the Python logging hook's records written to a
CSV file or TensorBoard event files (tensorboardX, the ``tensorboard`` extra) as the run goes."""

import csv
import json
import struct

import numpy as np
import pytest

from daedyn.cli import main
from daedyn.cli._log import open_log, parse_log

RECORDS = [{"epoch": 0, "train_loss": 1.5, "mapping": np.array([0.0, 0.1])},
           {"epoch": 10, "train_loss": 0.5, "mapping": np.array([0.9, 0.4])}]


def test_csv_log_has_one_row_per_record(tmp_path):
    log = open_log(("csv", str(tmp_path / "r.log.csv")))
    for r in RECORDS:
        log(r)
    log.close()
    rows = list(csv.DictReader((tmp_path / "r.log.csv").read_text().splitlines()))
    assert [int(r["epoch"]) for r in rows] == [0, 10]
    assert [float(r["mapping_1"]) for r in rows] == [0.1, 0.4] and float(rows[1]["train_loss"]) == 0.5


def _scalars(folder):
    """(tag, step, value) from TensorBoard event files, read by hand (TFRecord framing + protobuf)."""
    from tensorboardX.proto import event_pb2

    out = []
    for f in folder.iterdir():
        data = f.read_bytes()
        i = 0
        while i < len(data):
            (n,) = struct.unpack("<Q", data[i:i + 8])
            ev = event_pb2.Event.FromString(data[i + 12:i + 12 + n])
            i += 12 + n + 4
            out += [(v.tag, ev.step, v.simple_value) for v in ev.summary.value]
    return sorted(out)


def test_tensorboard_log_writes_one_scalar_per_entry(tmp_path):
    pytest.importorskip("tensorboardX", reason="the tensorboard extra")
    log = open_log(("tensorboard", str(tmp_path / "tb")))
    for r in RECORDS:
        log(r)
    log.close()
    got = _scalars(tmp_path / "tb")
    assert ("mapping_0", 10, pytest.approx(0.9)) in got and ("train_loss", 0, 1.5) in got
    assert len(got) == 6  # 2 records x (train_loss, mapping_0, mapping_1)


def test_log_spec_and_usage_errors(tmp_path, capsys):
    assert parse_log("csv", command="tune", out=None) == ("csv", "daedyn-tune.log.csv")
    assert main(["train", "--log", "wandb"]) == 2
    assert "--log must be csv or tensorboard" in capsys.readouterr().err
    assert main(["train", "--log", f"csv:{tmp_path}/missing/x.csv"]) == 2  # checked before any work
    assert "--log" in capsys.readouterr().err


@pytest.mark.slow  # a real training run (about 8 s of compilation on the 2-core CPU)
def test_train_log_csv_holds_the_saved_records(tmp_path, capsys):
    x = (np.random.default_rng(0).random((40, 5)) * np.linspace(1, 0.2, 5)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    rc = main(["train", "--dataset", str(tmp_path / "x.npy"), "--hidden", "3", "--epochs", "40",
               "--save-every", "10", "--alpha", "0.5", "--out", str(tmp_path / "r.npz"), "--log", "csv",
               "--json", "--quiet"])
    assert rc == 0 and json.loads(capsys.readouterr().out)["out"] == str(tmp_path / "r.npz")
    rows = list(csv.DictReader((tmp_path / "r.log.csv").read_text().splitlines()))
    saved = np.load(tmp_path / "r.npz")
    # the oracle is the result file: the log holds the same numbers, written as they came
    assert [float(r["epoch"]) for r in rows] == saved["t"].tolist()
    np.testing.assert_allclose([[float(r[f"mapping_{j}"]) for j in range(5)] for r in rows],
                               saved["mapping"][0], rtol=1e-6)
