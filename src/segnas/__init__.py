"""segnas: neural architecture search for real-time semantic and panoptic segmentation."""

__version__ = "0.1.0"
