"""Datasets and LightningDataModules."""

from segnas.data.base import SeededShuffleSampler, SegmentationDataModule, SegmentationDataset
from segnas.data.camvid import CamVidDataModule, CamVidDataset
from segnas.data.synthetic import SyntheticDataModule, SyntheticDataset

__all__ = [
    "CamVidDataModule",
    "CamVidDataset",
    "SeededShuffleSampler",
    "SegmentationDataModule",
    "SegmentationDataset",
    "SyntheticDataModule",
    "SyntheticDataset",
]
