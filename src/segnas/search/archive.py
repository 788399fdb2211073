"""Append-only JSONL archive of evaluated architectures: the search's memory, cache and resume point.

Each line is one record ``{"key", "genotype", "metrics", ...}``; a genotype's metrics are merged over
its lines (later lines add metrics, never recompute them). A line cut short by a killed process is
ignored on load, so a search restarted on the same file resumes without re-evaluating anything.
An archive made with an evaluation ``context`` (what the metrics depend on: checkpoint, data, settings)
starts with a ``{"context": ...}`` line, and opening it with a different context fails naming the
differences, so a result is only reused where its inputs are identical.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from segnas.spaces.base import Genotype
from segnas.spaces.registry import genotype_key

log = logging.getLogger(__name__)


class ArchiveMismatch(ValueError):
    """An archive was made with another evaluation context than the one it is opened with."""


class Archive:
    """Records of evaluated genotypes, kept in memory and appended to ``path`` as they arrive.

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
        self.path, self.writable = Path(path), writable
        self.key = key
        self.context = json.loads(json.dumps(context)) if context is not None else None
        self._records: dict[str, dict[str, Any]] = {}
        self._stored_context: dict[str, Any] | None = None
        self.n_loaded = 0
        if self.path.is_file():
            self._load()
        self._check_context()

    def _check_context(self) -> None:
        if self.context is None or (self._stored_context is None and not self._records):
            return
        stored = self._stored_context or {}
        differ = sorted(k for k in set(stored) | set(self.context) if stored.get(k) != self.context.get(k))
        if differ:
            detail = "; ".join(f"{k}: archive {stored.get(k)!r} vs now {self.context.get(k)!r}" for k in differ)
            raise ArchiveMismatch(
                f"{self.path} was evaluated in another context ({detail}); its results do not apply. "
                "Use a new output folder, or resume=false to move the old archive aside."
            )

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
            if "context" in record and "key" not in record:
                self._stored_context = record["context"]
                continue
            self._merge(record)
            self.n_loaded += 1

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
        if not self.writable:
            return self._merge(record)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            if self.context is not None and self._stored_context is None and f.tell() == 0:
                f.write(json.dumps({"context": self.context}, sort_keys=True) + "\n")
                self._stored_context = self.context
            f.write(json.dumps(record, sort_keys=True) + "\n")
            f.flush()
        return self._merge(record)
