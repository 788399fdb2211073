"""SasWOT proxies (Zhu et al., AAAI 2024).

* ``saswot_minus`` (eq. 2): over scored layers, the 0/1 comparison ``softmax(W, dim=0) < ReLU(dL/dW)``
  (softmax over the output-channel axis), reduced per layer by ``elem_reduce`` (``sum`` = count,
  ``mean`` = fraction) and over layers by ``layer_reduce`` (``sum`` as in the paper's formula, or ``mean``).
* ``saswot`` (eq. 3-4): ``norm_avt(saswot_minus) + norm_avt(nwot)``, where
  ``norm_avt(p) = (p - min) / (max - min)`` with min/max estimated once on randomly sampled
  architectures (:func:`calibrate`, cached on disk by :func:`calibrate_cached`).

Both read the shared pass only: SasWOT costs one forward and one backward.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from segnas.proxies.measures import nwot
from segnas.proxies.registry import Context, NotApplicable, compute, register
from segnas.proxies.stats import NWOT, WEIGHT_GRADS, LossFn

REDUCTIONS = ("sum", "mean")


def _reduce(values: torch.Tensor, how: str) -> torch.Tensor:
    if how not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {how!r}")
    return values.sum() if how == "sum" else values.mean()


@register("saswot_minus", needs=[WEIGHT_GRADS])
def saswot_minus(ctx: Context, elem_reduce: str = "sum", layer_reduce: str = "sum") -> float:
    """``reduce_layers reduce_elems [softmax(W, dim=0) < ReLU(dL/dW)]`` over scored layers."""
    stats = ctx.require_stats()
    if not all(bool(torch.isfinite(g).all()) for g in stats.grads):
        raise ValueError("non-finite weight gradients")
    per_layer = torch.stack(
        [
            _reduce((torch.softmax(w, dim=0) < torch.relu(g)).double(), elem_reduce)
            for w, g in zip(stats.weights, stats.grads, strict=True)
        ]
    )
    return float(_reduce(per_layer, layer_reduce))


@dataclass(frozen=True)
class AvtRanges:
    """Min/max of saswot_minus and nwot over sampled architectures (for AVT normalisation)."""

    saswot_minus: tuple[float, float]
    nwot: tuple[float, float]

    def __post_init__(self) -> None:
        for name in ("saswot_minus", "nwot"):
            lo, hi = getattr(self, name)
            if not hi > lo:
                raise ValueError(f"AVT range of {name} must have max > min, got ({lo}, {hi})")

    def to_dict(self) -> dict[str, list[float]]:
        """JSON-ready form."""
        return {"saswot_minus": list(self.saswot_minus), "nwot": list(self.nwot)}

    @classmethod
    def from_dict(cls, data: dict[str, list[float]]) -> AvtRanges:
        """Inverse of :meth:`to_dict`."""
        return cls(tuple(data["saswot_minus"]), tuple(data["nwot"]))


def norm_avt(value: float, bounds: tuple[float, float]) -> float:
    """``(value - min) / (max - min)``."""
    lo, hi = bounds
    return (value - lo) / (hi - lo)


@register("saswot", needs=[WEIGHT_GRADS, NWOT])
def saswot(
    ctx: Context, ranges: AvtRanges | None = None, elem_reduce: str = "sum", layer_reduce: str = "sum"
) -> float:
    """``norm_avt(saswot_minus) + norm_avt(nwot)``; needs ``ranges`` from :func:`calibrate`."""
    if ranges is None:
        raise NotApplicable(
            "saswot needs AVT min/max ranges: pass options={'saswot': {'ranges': calibrate(...)}}"
        )
    minus = saswot_minus(ctx, elem_reduce=elem_reduce, layer_reduce=layer_reduce)
    return norm_avt(minus, ranges.saswot_minus) + norm_avt(nwot(ctx), ranges.nwot)


def calibrate(
    models: Iterable[nn.Module],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    loss_fn: LossFn | None = None,
    elem_reduce: str = "sum",
    layer_reduce: str = "sum",
) -> AvtRanges:
    """AVT ranges from the saswot_minus and nwot scores of ``models`` (invalid scores skipped)."""
    seen: dict[str, list[float]] = {"saswot_minus": [], "nwot": []}
    options = {"saswot_minus": {"elem_reduce": elem_reduce, "layer_reduce": layer_reduce}}
    for model in models:
        scores = compute(list(seen), model, inputs, targets, loss_fn, options=options)
        for name, value in scores.items():
            if value == value:  # not NaN
                seen[name].append(value)
    if not all(seen.values()):
        raise ValueError(f"calibration produced no valid scores: {seen}")
    return AvtRanges(*((min(v), max(v)) for v in seen.values()))


def _digest(tensor: torch.Tensor) -> str:
    return hashlib.sha1(tensor.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:12]


def calibrate_cached(
    sample_model: Callable[[random.Random], nn.Module],
    num_archs: int,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    space: str,
    cache: str | Path | None = None,
    seed: int = 0,
    loss_fn: LossFn | None = None,
    elem_reduce: str = "sum",
    layer_reduce: str = "sum",
) -> AvtRanges:
    """:func:`calibrate` on ``num_archs`` models drawn by ``sample_model(rng)``, cached in a JSON file.

    The cache key covers ``space``, ``num_archs``, ``seed``, the reductions and the batch contents.
    """
    key = "|".join(
        [
            space,
            f"n={num_archs}",
            f"seed={seed}",
            f"{elem_reduce}/{layer_reduce}",
            f"x={_digest(inputs)}{tuple(inputs.shape)}",
            f"y={_digest(targets)}",
        ]
    )
    path = Path(cache) if cache else None
    entries = json.loads(path.read_text()) if path and path.exists() else {}
    if key in entries:
        return AvtRanges.from_dict(entries[key])
    rng = random.Random(seed)
    models = (sample_model(rng) for _ in range(num_archs))
    ranges = calibrate(models, inputs, targets, loss_fn, elem_reduce, layer_reduce)
    if path:
        entries[key] = ranges.to_dict()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(entries, indent=2, sort_keys=True) + "\n")
    return ranges
