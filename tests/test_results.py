"""Reading Tune's results through pyarrow.fs: a half-written line, sessions in order."""

from __future__ import annotations

import json

from analysis.results import is_dir, join, read_text, result_files, result_rows


def _trial(root, experiment, trial, rows):
    d = root / experiment / f"trial_{trial}"
    d.mkdir(parents=True)
    (d / "result.json").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_a_line_cut_short_by_a_kill_is_skipped(tmp_path):
    path = tmp_path / "result.json"
    path.write_text('{"a": 1}\n\n{"a": 2}\n{"a": 3, "b"')
    assert result_rows(str(path)) == [{"a": 1}, {"a": 2}]
    assert result_rows(path.as_uri()) == [{"a": 1}, {"a": 2}]  # a URI reads the same
    assert read_text(str(tmp_path / "missing")) is None


def test_result_files_come_in_session_order(tmp_path):
    for experiment in ("tune.10", "tune", "tune.2", "other"):
        _trial(tmp_path, experiment, "b", [{"x": 1}])
        _trial(tmp_path, experiment, "a", [{"x": 1}])
    (tmp_path / "tune" / "trial_c").mkdir()  # started, nothing logged yet
    found = result_files(str(tmp_path))
    assert [f.removeprefix(str(tmp_path) + "/") for f in found] == [
        f"{e}/trial_{t}/result.json" for e in ("tune", "tune.2", "tune.10") for t in "ab"
    ]
    assert is_dir(join(str(tmp_path), "tune")) and not is_dir(join(str(tmp_path), "nope"))
