"""Metrics usable without Lightning: mIoU, panoptic quality, MACs/params (traced, or analytic for genotypes),
latency, rank correlations."""

from segnas.metrics.complexity import count_macs, count_macs_params, count_params
from segnas.metrics.correlation import rank_correlations
from segnas.metrics.cost_model import builder_costs, genotype_costs
from segnas.metrics.latency import LatencyResult, measure_latency
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
    "builder_costs",
    "confusion_matrix",
    "count_macs",
    "count_macs_params",
    "count_params",
    "genotype_costs",
    "iou_per_class",
    "measure_latency",
    "miou",
    "pixel_accuracy",
    "pq_compute",
    "rank_correlations",
]
