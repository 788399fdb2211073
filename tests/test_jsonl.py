"""The one record-file format: context line, torn last record dropped, mismatch refused or rebuilt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from segnas.utils.jsonl import ContextMismatch, RecordLog


def test_records_survive_a_torn_last_line_and_a_context_change_is_named(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    log = RecordLog(path, context={"batch": 4, "seed": 0})
    log.append({"key": "a", "value": 1.0})
    log.append({"key": "b", "value": 2.0})
    assert json.loads(path.read_text().splitlines()[0])["context"] == {"batch": 4, "seed": 0}
    path.write_text(path.read_text() + '{"key": "c", "val')  # killed mid-write
    again = RecordLog(path, context={"batch": 4, "seed": 0})
    assert [r["key"] for r in again] == ["a", "b"]
    assert path.read_text().endswith('"value": 2.0}\n')  # the torn line is gone from the file too
    with pytest.raises(ContextMismatch, match=r"batch: file 4 vs now 8"):
        RecordLog(path, context={"batch": 8, "seed": 0})
    rebuilt = RecordLog(path, context={"batch": 8, "seed": 0}, rebuild=True)
    assert len(rebuilt) == 0 and (tmp_path / "r.jsonl.stale").is_file()


def test_a_corrupt_middle_line_fails_naming_the_file_unless_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"key": "a"}\nnot json\n{"key": "b"}\n')
    with pytest.raises(ValueError, match=r"r\.jsonl: line 2 is not valid JSON"):
        RecordLog(path)
    assert len(RecordLog(path, rebuild=True)) == 0


def test_a_changed_byte_fails_naming_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "archive.jsonl"
    log = RecordLog(path, context={"seed": 0})
    log.append({"key": "a", "metrics": {"miou": 41.25}})
    path.write_text(path.read_text().replace("41.25", "47.25"))  # a plausible, silently wrong value
    with pytest.raises(ValueError, match=r"archive\.jsonl: line 2 does not match its checksum"):
        RecordLog(path, context={"seed": 0})
    assert len(RecordLog(path, context={"seed": 0}, rebuild=True)) == 0  # a cache is rebuilt instead
