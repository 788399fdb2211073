"""The one on-disk format of everything segnas caches or resumes from: an append-only JSONL file whose first
line records the context its records depend on.

A record is written as one line and flushed at once, so a killed process loses at most the line it was
writing: a torn last line is dropped (with a warning naming the file) when the file is read again. Every line
carries the CRC-32 of its content (``_crc32``), so a changed byte fails naming the file and line. A file
written in another context is refused (:class:`ContextMismatch` names the differing keys) or, for a cache
(``rebuild=True``), moved aside with a warning and rebuilt.
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from segnas.utils import Refused

log = logging.getLogger(__name__)

CRC_KEY = "_crc32"


def _line(record: dict[str, Any]) -> str:
    """``record`` as one JSON line with the CRC-32 of its canonical form."""
    text = json.dumps(record, sort_keys=True)
    return json.dumps({**record, CRC_KEY: zlib.crc32(text.encode())}, sort_keys=True) + "\n"


def _checked(record: dict[str, Any], where: str) -> dict[str, Any]:
    """``record`` without its CRC, which must match (lines written before CRCs carry none)."""
    if CRC_KEY not in record:
        return record
    crc = record.pop(CRC_KEY)
    if zlib.crc32(json.dumps(record, sort_keys=True).encode()) != crc:
        raise ValueError(f"{where} does not match its checksum (changed on disk)")
    return record


class ContextMismatch(Refused):
    """A record file was written in another context than the one it is opened with."""


class RecordLog:
    """Records (JSON objects) appended to ``path``, checked against ``context``.

    Args:
        path: the JSONL file (created on the first append; read when it exists).
        context: JSON-serialisable description of what the records depend on; None: not checked.
        writable: False keeps new records in memory only (e.g. the non-writing ranks of a distributed job).
        rebuild: on a context mismatch or an unreadable file, move it aside (``<name>.stale``) and start
            empty instead of failing (for caches, whose records can be computed again).
    """

    def __init__(self, path: str | Path, context: dict[str, Any] | None = None, writable: bool = True,
                 rebuild: bool = False) -> None:
        self.path, self.writable = Path(path), writable
        self.context = json.loads(json.dumps(context)) if context is not None else None
        self.stored_context: dict[str, Any] | None = None
        self.records: list[dict[str, Any]] = []
        if self.path.is_file():
            try:
                self._load()
                self._check_context()
            except ValueError as err:  # ContextMismatch included
                if not rebuild:
                    raise
                stale = self.path.with_name(self.path.name + ".stale")
                log.warning("%s; rebuilding it (the old file is kept as %s)", err, stale)
                self.path.replace(stale)
                self.stored_context, self.records = None, []

    def _load(self) -> None:
        lines = self.path.read_text().splitlines()
        for i, line in enumerate(lines):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                if i < len(lines) - 1:
                    raise ValueError(f"{self.path}: line {i + 1} is not valid JSON") from None
                log.warning("%s: dropping a truncated last line (a killed write)", self.path)
                tmp = self.path.with_suffix(".tmp")
                tmp.write_text("".join(f"{kept}\n" for kept in lines[:-1]))
                tmp.replace(self.path)
                continue
            if not isinstance(record, dict):
                raise ValueError(f"{self.path}: line {i + 1} is not a JSON object")
            record = _checked(record, f"{self.path}: line {i + 1}")
            if "context" in record and len(record) == 1 and i == 0:
                self.stored_context = record["context"]
            else:
                self.records.append(record)

    def _check_context(self) -> None:
        if self.context is None or (self.stored_context is None and not self.records):
            return
        stored = self.stored_context or {}
        differ = sorted(k for k in set(stored) | set(self.context) if stored.get(k) != self.context.get(k))
        if differ:
            detail = "; ".join(f"{k}: file {stored.get(k)!r} vs now {self.context.get(k)!r}" for k in differ)
            raise ContextMismatch(f"{self.path} was written in another context ({detail}); its records do not "
                                  "apply")

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        """Write one record line now (flushed; the context line first in a new file) and keep it in memory."""
        self.records.append(record)
        if not self.writable:
            return record
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            if self.context is not None and self.stored_context is None and f.tell() == 0:
                f.write(_line({"context": self.context}))
                self.stored_context = self.context
            f.write(_line(record))
            f.flush()
        return record
