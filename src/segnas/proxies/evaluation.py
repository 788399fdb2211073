"""Rank correlation of proxies against benchmark ground truth over repeated architecture samples.

The protocol of SasWOT's Table 3: draw ``sample_size`` architectures (50) ``repeats`` times, compute
Kendall / Spearman / Pearson between each proxy and the target on every sample, report mean and std.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from segnas.metrics.correlation import rank_correlations
from segnas.utils.hashing import data_sha1
from segnas.utils.jsonl import RecordLog

COEFFICIENTS = ("kendall", "spearman", "pearson")
Scores = dict[str, dict[str, float]]  # arch -> proxy -> score
log = logging.getLogger(__name__)


def draw_samples(
    archs: Sequence[str], sample_size: int, repeats: int, rng: random.Random, pool_size: int | None = None
) -> list[list[str]]:
    """``repeats`` samples of ``sample_size`` distinct archs, drawn from a random pool of ``pool_size``
    (all of ``archs`` when None; a smaller pool makes samples overlap but costs fewer proxy evaluations).
    """
    pool = list(archs) if pool_size is None else rng.sample(list(archs), min(pool_size, len(archs)))
    if sample_size > len(pool):
        raise ValueError(f"sample_size {sample_size} exceeds the {len(pool)} architectures available")
    return [rng.sample(pool, sample_size) for _ in range(repeats)]


def summarize(
    samples: Sequence[Sequence[str]], scores: Scores, targets: Mapping[str, float], names: Sequence[str]
) -> dict[str, dict[str, float]]:
    """Per proxy: mean and std (``<coef>_std``) of each coefficient over the samples; ``valid`` = the
    mean number of architectures with a finite score per sample. Samples with an undefined coefficient
    (e.g. a constant proxy) are skipped for that coefficient.
    """
    out = {}
    for name in names:
        per_coef: dict[str, list[float]] = {c: [] for c in COEFFICIENTS}
        valid = []
        for sample in samples:
            x = [scores[a][name] for a in sample]
            corr = rank_correlations(x, [targets[a] for a in sample])
            valid.append(sum(math.isfinite(v) for v in x))
            for coef in COEFFICIENTS:
                if math.isfinite(corr[coef]):
                    per_coef[coef].append(corr[coef])
        row: dict[str, float] = {"valid": float(np.mean(valid))}
        for coef, values in per_coef.items():
            row[coef] = float(np.mean(values)) if values else math.nan
            row[f"{coef}_std"] = float(np.std(values)) if values else math.nan
        out[name] = row
    return out


def batch_digest(*tensors: torch.Tensor) -> str:
    """SHA-1 of the tensors' shapes, dtypes and contents (e.g. a scoring batch's inputs and targets)."""
    sha = hashlib.sha1()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        sha.update(f"{tuple(t.shape)}{t.dtype}".encode())
        sha.update(t.numpy().tobytes())
    return sha.hexdigest()


def _plain(value: Any) -> Any:
    to_dict = getattr(value, "to_dict", None)
    return to_dict() if callable(to_dict) else repr(value)


class ScoreFile:
    """Per-architecture proxy scores in a record file (:class:`~segnas.utils.jsonl.RecordLog`: one
    ``{"arch", "scores"}`` line per architecture, appended as computed), so an interrupted run resumes where it
    stopped and a torn last line is dropped.

    The scores are keyed by ``context``, what they depend on (the scoring batch, the proxies' options and
    definitions, how the networks are built): ``path`` ``dir/stem.csv`` becomes ``dir/stem_<key>.jsonl``,
    ``key`` a hash of ``context``, whose first line holds the context. A run with another setting writes
    another file and never reads these scores. Values without a JSON form are keyed by their ``to_dict()``
    (e.g. :class:`~segnas.proxies.saswot.AvtRanges`) or ``repr``.
    """

    def __init__(self, path: Path, names: Sequence[str], context: Mapping[str, Any]) -> None:
        plain = json.loads(json.dumps(context, sort_keys=True, default=_plain))
        self.key = data_sha1(plain, 12)
        self.names = list(names)
        self.log = RecordLog(path.with_name(f"{path.stem}_{self.key}.jsonl"), context=plain)
        self.path = self.log.path
        self.scores: Scores = {r["arch"]: {n: float(r["scores"][n]) for n in self.names} for r in self.log}

    def add(self, arch: str, values: Mapping[str, float]) -> None:
        """Record (and append to the file) the scores of ``arch``."""
        self.scores[arch] = {n: float(values[n]) for n in self.names}
        self.log.append({"arch": arch, "scores": self.scores[arch]})


def eta(started: float, done: int, total: int) -> str:
    """The time left for ``total - done`` more items at the mean time per item since ``started``
    (:func:`time.monotonic`), as tqdm writes intervals (``h:mm:ss``, like NSGA-II's generation ETA)."""
    return tqdm.format_interval((time.monotonic() - started) / max(done, 1) * (total - done))


def score_all(
    archs: Sequence[str], score_fn: Callable[[str], Mapping[str, float]], store: ScoreFile, progress: bool
) -> Scores:
    """Scores of ``archs`` by ``score_fn``, reusing those already in ``store``; logs how many networks are to
    score and, when ``progress``, a line per network with the ETA."""
    todo = [a for a in dict.fromkeys(archs) if a not in store.scores]
    label = store.path.stem.rsplit("_", 1)[0]
    log.info("%s: %d networks to score, %d already scored in %s", label, len(todo),
             len(set(archs)) - len(todo), store.path)  # fmt: skip
    started = time.monotonic()
    for done, arch in enumerate(todo, 1):
        store.add(arch, score_fn(arch))
        if progress:
            log.info("%s: network %d of %d scored (%s), ETA %s", label, done, len(todo), arch,
                     eta(started, done, len(todo)))  # fmt: skip
    return {a: store.scores[a] for a in archs}
