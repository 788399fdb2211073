"""Metrics usable without Lightning: mIoU, panoptic quality, MACs/params (traced; the operator formulas of the
analytic cost model in :mod:`~segnas.metrics.cost_model`), latency, peak memory, rank correlations. A leaf
package: it imports no other segnas package."""

from segnas.metrics.complexity import attention_macs, count_macs, count_macs_params, count_params
from segnas.metrics.correlation import rank_correlations
from segnas.metrics.latency import LatencyResult, measure_latency
from segnas.metrics.memory import peak_memory_mb
from segnas.metrics.panoptic import PanopticQuality, pq_compute
from segnas.metrics.segmentation import (
    SegmentationMetric,
    confusion_matrix,
    iou_per_class,
    miou,
    pixel_accuracy,
)

__all__ = [
    "LatencyResult",
    "PanopticQuality",
    "SegmentationMetric",
    "attention_macs",
    "confusion_matrix",
    "count_macs",
    "count_macs_params",
    "count_params",
    "iou_per_class",
    "measure_latency",
    "miou",
    "peak_memory_mb",
    "pixel_accuracy",
    "pq_compute",
    "rank_correlations",
]
