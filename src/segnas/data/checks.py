"""Up-front scan of a dataset split read from files: every sample's image/label pairing, sizes and label
values, before any training starts (a bad label is found in seconds, not after an epoch).

A scan that passed is remembered in a small JSON file keyed by the files' paths, sizes and modification
times (and the class set), so the next run over the same unchanged files skips it. The file lives in the
user's cache, ``$SEGNAS_CACHE/data_checks/`` (default ``~/.cache/segnas``), one per data folder: data
folders are often shared or read-only, and every run has a new run folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

CACHE_ENTRIES = 32  # signatures remembered per cache file
MAX_REPORTED = 10  # bad samples listed in one error


class DataCheckError(ValueError):
    """Samples of a split are unreadable, mispaired, of mismatched sizes or hold labels out of range."""


def cache_path(root: Path) -> Path:
    """Where the scans of data under ``root`` are remembered."""
    base = Path(os.environ.get("SEGNAS_CACHE", Path.home() / ".cache" / "segnas"))
    return base / "data_checks" / f"{hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:16]}.json"


def signature(files: list[Path], settings: dict[str, Any]) -> str:
    """A hash of the files' paths, sizes and modification times and of the JSON-able ``settings``."""
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode())
    for path in files:
        stat = path.stat()
        digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _read_cache(path: Path) -> list[str]:
    try:
        entries = json.loads(path.read_text())["passed"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [str(e) for e in entries] if isinstance(entries, list) else []


def _remember(path: Path, key: str) -> None:
    kept = [e for e in _read_cache(path) if e != key][-(CACHE_ENTRIES - 1):]
    entries = [*kept, key]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"passed": entries}) + "\n")
        tmp.replace(path)
    except OSError as err:
        log.warning("cannot record the data check in %s: %s", path, err)


def sample_problem(sample: dict[str, np.ndarray], num_classes: int, ignore_index: int) -> str | None:
    """What is wrong with a loaded sample (image HxWx3, mask HxW with classes or ``ignore_index``), or None."""
    image, mask = sample["image"], sample["mask"]
    if image.ndim != 3 or image.shape[2] != 3:
        return f"image has shape {image.shape}, expected H x W x 3"
    for name in ("mask", "instance"):
        if name in sample and sample[name].shape != image.shape[:2]:
            return f"{name} is {sample[name].shape[1::-1]} (W x H) but the image is {image.shape[1::-1]}"
    values = np.unique(mask)
    bad = values[((values < 0) | (values >= num_classes)) & (values != ignore_index)]
    if bad.size:
        return (f"label values {bad[:10].tolist()} lie outside the classes 0..{num_classes - 1} "
                f"(ignore {ignore_index})")
    return None


def check_split(dataset: Any, count: int, split: str, num_classes: int, ignore_index: int) -> None:
    """Load the first ``count`` samples of ``dataset`` (a :class:`~segnas.data.base.SegmentationDataset`)
    and raise :class:`DataCheckError` listing the bad ones with their files; generated datasets (no
    files) are not scanned, and an unchanged split that passed before is not scanned again."""
    files_of = [tuple(dataset.files(i)) for i in range(count)]
    files = [f for group in files_of for f in group]
    if not files:
        return
    settings = {"dataset": type(dataset).__name__, "split": split, "num_classes": num_classes,
                "ignore_index": ignore_index, "annotations": [dataset.annotation(i) for i in range(count)]}
    cache = cache_path(Path(os.path.commonpath([str(f.parent) for f in files])))
    key = signature(files, settings)
    if key in _read_cache(cache):
        return
    log.info("Checking the %d samples of split %r (pairing, sizes, label values)", count, split)
    problems = []
    for index in range(count):
        try:
            problem = sample_problem(dataset.load(index), num_classes, ignore_index)
        except (OSError, ValueError, KeyError) as err:
            problem = str(err)
        if problem is not None:
            problems.append(f"{', '.join(map(str, files_of[index]))}: {problem}")
    if problems:
        more = f" (and {len(problems) - MAX_REPORTED} more)" if len(problems) > MAX_REPORTED else ""
        raise DataCheckError(f"split {split!r}: {len(problems)} of {count} samples are bad{more}:\n  "
                             + "\n  ".join(problems[:MAX_REPORTED]))
    _remember(cache, key)
