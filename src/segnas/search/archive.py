"""Append-only JSONL archive of evaluated architectures: the search's memory, cache and resume point.

Each line is one record ``{"key", "genotype", "metrics", ...}``; a genotype's metrics are merged over
its lines (later lines add metrics, never recompute them). A line cut short by a killed process is
ignored on load, so a search restarted on the same file resumes without re-evaluating anything.
An archive made with an evaluation ``context`` (what the metrics depend on: checkpoint, data, settings)
starts with a ``{"context": ...}`` line, and opening it with a different context fails naming the
differences, so a result is only reused where its inputs are identical.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from segnas.spaces.base import Genotype
from segnas.spaces.registry import genotype_key
from segnas.utils.jsonl import ContextMismatch, RecordLog


class ArchiveMismatch(ContextMismatch):
    """An archive was made with another evaluation context than the one it is opened with."""


class Archive:
    """Records of evaluated genotypes, kept in memory and appended to ``path`` as they arrive
    (a :class:`~segnas.utils.jsonl.RecordLog`).

    Args:
        path: the JSONL file (created on the first append; read when it exists).
        key: canonical key of a genotype (a space's :meth:`~segnas.spaces.base.SearchSpace.key`).
        context: JSON-serialisable description of what the metrics depend on; None: not checked.
        writable: False keeps new records in memory only (the non-writing ranks of a distributed search).
    """

    def __init__(
        self,
        path: str | Path,
        key: Callable[[Genotype], str] = genotype_key,
        context: dict[str, Any] | None = None,
        writable: bool = True,
    ) -> None:
        try:
            self.log = RecordLog(path, context, writable)
        except ContextMismatch as err:
            raise ArchiveMismatch(f"{err}. Use a new output folder, or resume=false to move the old archive "
                                  "aside.") from None
        self.path, self.key, self.context = self.log.path, key, self.log.context
        self._records: dict[str, dict[str, Any]] = {}
        for record in self.log:
            self._merge(record)
        self.n_loaded = len(self.log)

    def _merge(self, record: dict[str, Any]) -> dict[str, Any]:
        key = record["key"]
        old = self._records.get(key)
        if old is None:
            merged = {**record, "metrics": dict(record.get("metrics", {}))}
        else:
            merged = {**record, **old, "metrics": {**record.get("metrics", {}), **old["metrics"]}}
        self._records[key] = merged
        return merged

    def __contains__(self, key: str) -> bool:
        return key in self._records

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self._records.values())

    def get(self, key: str) -> dict[str, Any] | None:
        """The merged record of ``key`` (None when never seen)."""
        return self._records.get(key)

    def metrics(self, key: str) -> dict[str, float]:
        """The metrics known for ``key`` (empty when never seen)."""
        record = self._records.get(key)
        return dict(record["metrics"]) if record else {}

    def append(self, genotype: Genotype, metrics: dict[str, float], **info: Any) -> dict[str, Any]:
        """Write one record line now (flushed) and merge it into memory; returns the merged record."""
        record = {"key": self.key(genotype), "genotype": genotype.to_dict(), "metrics": metrics, **info}
        return self._merge(self.log.append(record))
