"""Datasets and LightningDataModules."""

from segnas.data.ade20k import ADE20KDataModule
from segnas.data.base import SeededShuffleSampler, SegmentationDataModule, SegmentationDataset
from segnas.data.camvid import CamVidDataModule, CamVidDataset
from segnas.data.cityscapes import CityscapesDataModule, CityscapesPanopticDataModule
from segnas.data.coco_panoptic import COCOPanopticDataModule
from segnas.data.synthetic import SyntheticDataModule, SyntheticDataset

__all__ = [
    "ADE20KDataModule",
    "COCOPanopticDataModule",
    "CamVidDataModule",
    "CamVidDataset",
    "CityscapesDataModule",
    "CityscapesPanopticDataModule",
    "SeededShuffleSampler",
    "SegmentationDataModule",
    "SegmentationDataset",
    "SyntheticDataModule",
    "SyntheticDataset",
]
