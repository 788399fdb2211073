"""SasWOT proxies (Zhu et al., AAAI 2024).

* ``saswot_minus`` (eq. 2): over scored layers, the 0/1 comparison ``softmax(W, dim=0) < ReLU(dL/dW)``
  (softmax over the output-channel axis), reduced per layer by ``elem_reduce`` (``sum`` = count,
  ``mean`` = fraction) and over layers by ``layer_reduce`` (``sum`` as in the paper's formula, or ``mean``).
  ``loss_reduction`` says which reduction of the per-pixel cross-entropy ``dL/dW`` belongs to (the paper does
  not say, and the comparison with ``softmax(W)`` depends on the gradient's scale): ``image`` (default: summed
  over each image's pixels, averaged over the batch, i.e. the per-sample loss averaged over the batch as in
  the classification code SasWOT was searched with), ``mean`` (the gradient of the pass's loss, the mean over
  the labelled pixels) or ``sum`` (summed over all pixels). Each rescales the same gradient exactly, so the
  pass is shared. ``mean`` makes the gradients 10-1000x smaller than ``softmax(W)``: the count is a few stem
  weights, 0 on many small networks (``experiments/saswot_proxy_correlations/saswot_minus_variants.md``).
* ``saswot`` (eq. 3-4): ``norm_avt(saswot_minus) + norm_avt(nwot)``, where
  ``norm_avt(p) = (p - min) / (max - min)`` with min/max estimated once on sampled architectures
  (:func:`calibrate`, cached on disk by :func:`calibrate_cached`); ``normalize="rank"`` replaces each
  ``norm_avt`` by :func:`norm_rank`, the term's empirical CDF over those architectures, so that one outlier
  among them no longer squeezes every other score into a corner of ``[0, 1]``.

Both read the shared pass only: SasWOT costs one forward and one backward.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from segnas.proxies.measures import nwot
from segnas.proxies.registry import Context, NotApplicable, compute, register
from segnas.proxies.stats import NWOT, WEIGHT_GRADS, LossFn
from segnas.utils.hashing import tensor_sha1
from segnas.utils.jsonl import RecordLog

REDUCTIONS = ("sum", "mean")
LOSS_REDUCTIONS = ("mean", "image", "sum")
DEFAULT_LOSS_REDUCTION = "image"
NORMALIZATIONS = ("avt", "rank")


def _reduce(values: torch.Tensor, how: str) -> torch.Tensor:
    if how not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {how!r}")
    return values.sum() if how == "sum" else values.mean()


def grad_scale(ctx: Context, loss_reduction: str) -> float:
    """Factor turning ``dL/dW`` of the pass's loss into that of the cross-entropy reduced by ``loss_reduction``.

    ``mean`` is 1 (any loss). ``image`` (``n_labelled / N``) and ``sum`` (``n_labelled``) need the pass's loss
    to be the mean per-pixel (or per-sample) cross-entropy, ``nn.CrossEntropyLoss`` with reduction ``mean``
    and no class weights, as :func:`segnas.proxies.stats.default_loss`: it averages over the
    ``n_labelled`` targets that are not ``ignore_index``.
    """
    if loss_reduction not in LOSS_REDUCTIONS:
        raise ValueError(f"loss_reduction must be one of {LOSS_REDUCTIONS}, got {loss_reduction!r}")
    if loss_reduction == "mean":
        return 1.0
    loss_fn, targets = ctx.loss_fn, ctx.targets
    if (
        not isinstance(loss_fn, nn.CrossEntropyLoss)
        or loss_fn.reduction != "mean"
        or loss_fn.weight is not None
        or targets.is_floating_point()
    ):
        raise ValueError(
            f"loss_reduction={loss_reduction!r} rescales the gradient of a mean cross-entropy: it needs "
            "nn.CrossEntropyLoss(reduction='mean') without class weights and integer targets"
        )
    labelled = float((targets != loss_fn.ignore_index).sum())
    return labelled if loss_reduction == "sum" else labelled / targets.shape[0]


@register("saswot_minus", needs=[WEIGHT_GRADS])
def saswot_minus(
    ctx: Context, elem_reduce: str = "sum", layer_reduce: str = "sum", loss_reduction: str = DEFAULT_LOSS_REDUCTION
) -> float:
    """``reduce_layers reduce_elems [softmax(W, dim=0) < ReLU(s * dL/dW)]`` over scored layers.

    ``s`` = :func:`grad_scale` (the per-image pixel count for the default ``loss_reduction="image"``).
    """
    stats = ctx.require_stats()
    if not all(bool(torch.isfinite(g).all()) for g in stats.grads):
        raise ValueError("non-finite weight gradients")
    scale = grad_scale(ctx, loss_reduction)
    per_layer = torch.stack(
        [
            _reduce(
                (torch.softmax(w, dim=0) < torch.relu(g if scale == 1.0 else scale * g)).double(), elem_reduce
            )
            for w, g in zip(stats.weights, stats.grads, strict=True)
        ]
    )
    return float(_reduce(per_layer, layer_reduce))


@dataclass(frozen=True)
class AvtRanges:
    """Min/max of saswot_minus and nwot over sampled architectures (for AVT normalisation), and the scores
    themselves (``*_samples``, for rank normalisation; empty when only the ranges are known)."""

    saswot_minus: tuple[float, float]
    nwot: tuple[float, float]
    saswot_minus_samples: tuple[float, ...] = ()
    nwot_samples: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        for name in ("saswot_minus", "nwot"):
            lo, hi = getattr(self, name)
            if not hi > lo:
                raise ValueError(f"AVT range of {name} must have max > min, got ({lo}, {hi})")

    def to_dict(self) -> dict[str, list[float]]:
        """JSON-ready form (the samples only when known, so that the ranges alone keep their older form)."""
        samples = {"saswot_minus_samples": list(self.saswot_minus_samples), "nwot_samples": list(self.nwot_samples)}
        return {"saswot_minus": list(self.saswot_minus), "nwot": list(self.nwot),
                **(samples if self.nwot_samples else {})}

    @classmethod
    def from_dict(cls, data: dict[str, list[float]]) -> AvtRanges:
        """Inverse of :meth:`to_dict` (the samples are optional)."""
        return cls(tuple(data["saswot_minus"]), tuple(data["nwot"]),
                   tuple(data.get("saswot_minus_samples", ())), tuple(data.get("nwot_samples", ())))


def norm_avt(value: float, bounds: tuple[float, float]) -> float:
    """``(value - min) / (max - min)``."""
    lo, hi = bounds
    return (value - lo) / (hi - lo)


def norm_rank(value: float, samples: Sequence[float]) -> float:
    """Empirical CDF of ``samples`` at ``value`` in ``[0, 1]``: the i-th smallest sample (0-based) maps to
    ``(i + 0.5) / n`` (ties to their mean), values in between are interpolated linearly, and values beyond the
    smallest or largest sample are clamped to ``0.5 / n`` or ``1 - 0.5 / n``."""
    if not samples:
        raise ValueError("rank normalisation needs calibration samples: recalibrate (calibrate() records them)")
    xs = np.sort(np.asarray(samples, dtype=float))
    levels = (np.arange(len(xs)) + 0.5) / len(xs)
    unique, inverse = np.unique(xs, return_inverse=True)
    tied = np.bincount(inverse, weights=levels) / np.bincount(inverse)
    return float(np.interp(value, unique, tied))


@register("saswot", needs=[WEIGHT_GRADS, NWOT])
def saswot(
    ctx: Context,
    ranges: AvtRanges | None = None,
    elem_reduce: str = "sum",
    layer_reduce: str = "sum",
    loss_reduction: str = DEFAULT_LOSS_REDUCTION,
    normalize: str = "avt",
) -> float:
    """``norm(saswot_minus) + norm(nwot)`` with ``norm`` = :func:`norm_avt` (``normalize="avt"``, the paper)
    or :func:`norm_rank` (``"rank"``); needs ``ranges`` from :func:`calibrate`."""
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {NORMALIZATIONS}, got {normalize!r}")
    if ranges is None:
        raise NotApplicable(
            "saswot needs AVT min/max ranges: pass options={'saswot': {'ranges': calibrate(...)}}"
        )
    minus = saswot_minus(
        ctx, elem_reduce=elem_reduce, layer_reduce=layer_reduce, loss_reduction=loss_reduction
    )
    if normalize == "rank":
        return norm_rank(minus, ranges.saswot_minus_samples) + norm_rank(nwot(ctx), ranges.nwot_samples)
    return norm_avt(minus, ranges.saswot_minus) + norm_avt(nwot(ctx), ranges.nwot)


def calibrate(
    models: Iterable[nn.Module],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    loss_fn: LossFn | None = None,
    elem_reduce: str = "sum",
    layer_reduce: str = "sum",
    loss_reduction: str = DEFAULT_LOSS_REDUCTION,
) -> AvtRanges:
    """AVT ranges and samples from the saswot_minus and nwot scores of ``models`` (invalid scores skipped)."""
    seen: dict[str, list[float]] = {"saswot_minus": [], "nwot": []}
    reduce = {"elem_reduce": elem_reduce, "layer_reduce": layer_reduce, "loss_reduction": loss_reduction}
    options = {"saswot_minus": reduce}
    for model in models:
        scores = compute(list(seen), model, inputs, targets, loss_fn, options=options)
        for name, value in scores.items():
            if value == value:  # not NaN
                seen[name].append(value)
    if not all(seen.values()):
        raise ValueError(f"calibration produced no valid scores: {seen}")
    minus, kernel = seen["saswot_minus"], seen["nwot"]
    return AvtRanges((min(minus), max(minus)), (min(kernel), max(kernel)), tuple(minus), tuple(kernel))


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
    loss_reduction: str = DEFAULT_LOSS_REDUCTION,
) -> AvtRanges:
    """:func:`calibrate` on ``num_archs`` models drawn by ``sample_model(rng)``, cached in a JSONL record file
    (:class:`~segnas.utils.jsonl.RecordLog`: a torn last record is dropped, an unreadable file rebuilt).

    The cache key covers ``space`` (name whatever restricts the sampled architectures in it, e.g. a budget),
    ``num_archs``, ``seed``, the reductions and the batch contents (``loss_reduction`` only when it is not
    ``mean``, the default until segnas 0.3, so older records keep their key); a record without the calibration
    samples (rank normalisation needs them) is recomputed.
    """
    parts = [
        space,
        f"n={num_archs}",
        f"seed={seed}",
        f"{elem_reduce}/{layer_reduce}",
        f"x={tensor_sha1(inputs, 12)}{tuple(inputs.shape)}",
        f"y={tensor_sha1(targets, 12)}",
    ]
    if loss_reduction != "mean":
        parts.append(f"loss={loss_reduction}")
    key = "|".join(parts)
    records = RecordLog(cache, rebuild=True) if cache else None
    cached = next((r for r in records or () if r.get("key") == key and "nwot_samples" in r["ranges"]), None)
    if cached is not None:
        return AvtRanges.from_dict(cached["ranges"])
    rng = random.Random(seed)
    models = (sample_model(rng) for _ in range(num_archs))
    ranges = calibrate(models, inputs, targets, loss_fn, elem_reduce, layer_reduce, loss_reduction)
    if records is not None:
        records.append({"key": key, "ranges": ranges.to_dict()})
    return ranges
