"""benchmarks/__main__: a partial run (``--only``) keeps the other benchmarks' rows; each benchmark runs in
a process of its own and a failing one is reported, not fatal."""

import json

import pytest

from benchmarks.__main__ import MODULES, _run_one, merge_results


def _run(rows, date, quick=True, failures=None):
    return {"hardware": {"device": date}, "rows": rows, "failures": failures or {}, "quick": quick,
            "date": date}


def test_partial_run_replaces_only_its_rows():
    a, b = MODULES[0], MODULES[1]
    old = _run([{"benchmark": a, "ours": 1}, {"benchmark": b, "ours": 2}, {"benchmark": b, "ours": 3}], "d1",
               failures={b: "boom"})
    new = _run([{"benchmark": b, "ours": 4}], "d2")
    out = merge_results(old, new, [b])
    assert [(r["benchmark"], r["ours"]) for r in out["rows"]] == [(a, 1), (b, 4)]
    assert out["failures"] == {} and out["dates"] == {a: "d1", b: "d2"}
    assert out["hardware"] == {"device": "d2"}  # the new run's machine description
    # a later partial run of a keeps b's date
    again = merge_results(out, _run([{"benchmark": a, "ours": 5}], "d3"), [a])
    assert again["dates"] == {a: "d3", b: "d2"} and [r["ours"] for r in again["rows"]] == [5, 4]


def test_other_size_or_no_file_is_not_merged():
    old = _run([{"benchmark": MODULES[0], "ours": 1}], "d1", quick=False)
    new = _run([{"benchmark": MODULES[1], "ours": 2}], "d2")
    assert merge_results(old, new, [MODULES[1]])["rows"] == new["rows"]
    assert merge_results(None, new, [MODULES[1]])["dates"] == {MODULES[1]: "d2"}


def test_rows_and_failures_of_former_benchmarks_are_dropped():
    # a module that stopped being a benchmark (now a stand-alone script) kept its old failure in
    # every later results file, full runs included
    old = _run([{"benchmark": "gone", "ours": 1}, {"benchmark": MODULES[0], "ours": 2}], "d1",
               failures={"gone": "AttributeError: no run()"})
    out = merge_results(old, _run([{"benchmark": MODULES[1], "ours": 3}], "d2"), [MODULES[1]])
    assert out["failures"] == {} and [r["benchmark"] for r in out["rows"]] == [MODULES[0], MODULES[1]]
    assert set(out["dates"]) == {MODULES[0], MODULES[1]}


def test_a_benchmark_runs_in_its_own_process_and_its_failure_is_reported(capfd):
    # the child process imports benchmarks.<name>; an import error is this benchmark's failure
    out = _run_one("no_such_benchmark", quick=True)
    assert out == {"error": "ModuleNotFoundError: No module named 'benchmarks.no_such_benchmark'"}
    assert "Traceback" in capfd.readouterr().err  # the child's traceback reaches our stderr


def test_write_json_is_atomic_and_loses_nothing(tmp_path, capsys):
    from benchmarks._io import write_json

    out = tmp_path / "r.json"
    assert write_json(out, {"rows": [1.5]}, indent=1)
    assert json.loads(out.read_text()) == {"rows": [1.5]}
    # a value json cannot encode fails before the file is touched: the previous results stay whole
    with pytest.raises(TypeError):
        write_json(out, {"rows": [object()]})
    assert json.loads(out.read_text()) == {"rows": [1.5]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]  # no temporary file left
    # a folder that does not exist: False, and the results are printed instead of lost
    assert not write_json(tmp_path / "missing" / "r.json", {"rows": [2.5]})
    err = capsys.readouterr().err
    assert "could not write" in err and json.loads(err.split("results:\n", 1)[1]) == {"rows": [2.5]}
