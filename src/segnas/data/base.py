"""Dataset and LightningDataModule bases shared by every segmentation dataset.

Augmentation randomness is keyed by (seed, epoch, position in the epoch) through
:class:`SeededShuffleSampler`, which yields ``(index, augmentation_seed)`` pairs. A run therefore
sees exactly the same batches whatever the number of workers and whether it was resumed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import albumentations as A
import cv2
import lightning as L
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

from segnas.data.checks import check_split
from segnas.data.transforms import eval_transform, train_transform

Sample = dict[str, np.ndarray]


def read_image(path: Path) -> np.ndarray:
    """Read an RGB image as ``HxWx3 uint8``; unreadable files raise ``ValueError`` naming the file."""
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"cannot read image {path}: {err}") from err


def read_label(path: Path) -> np.ndarray:
    """Read a single-channel label PNG as ``HxW`` integer array; errors name the file."""
    try:
        with Image.open(path) as img:
            if img.mode not in ("L", "P", "I", "I;16"):
                raise ValueError(f"expected a single-channel label image, got mode {img.mode!r}")
            return np.asarray(img)
    except (OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"cannot read label {path}: {err}") from err


def resize_pair(image: np.ndarray, label: np.ndarray | None, scale: float) -> tuple[np.ndarray, np.ndarray | None]:
    """Resize image (bilinear) and label (nearest) by ``scale``."""
    if scale == 1.0:
        return image, label
    h, w = image.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    if label is not None:
        label = cv2.resize(label, size, interpolation=cv2.INTER_NEAREST)
    return image, label


class SegmentationDataset(Dataset, ABC):
    """A dataset of ``{"image", "mask"[, "instance"]}`` samples; subclasses implement :meth:`load`.

    ``__getitem__`` accepts an index or an ``(index, augmentation_seed)`` pair.
    """

    def __init__(self, transform: A.Compose | None = None, image_scale: float = 1.0) -> None:
        self.transform = transform
        self.image_scale = image_scale

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def load(self, index: int) -> Sample:
        """Return ``image`` (HxWx3 uint8), ``mask`` (HxW train ids, 255 = ignore) and optionally ``instance``."""

    def files(self, index: int) -> tuple[Path, ...]:
        """The files sample ``index`` is read from: its ``(image, label)`` pair for datasets that list their
        files in ``self.pairs``; empty for generated datasets (nothing to check up front)."""
        pairs = getattr(self, "pairs", None)
        return tuple(pairs[index]) if pairs is not None else ()

    def annotation(self, index: int) -> Any:
        """What sample ``index`` reads besides its :meth:`files` (e.g. a panoptic JSON's segments), JSON-able:
        part of the key under which a passed data check is remembered; None when the files hold everything."""
        return None

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        index, aug_seed = key if isinstance(key, tuple) else (key, index_seed(key))
        sample = self.load(index)
        image, mask = resize_pair(sample["image"], sample["mask"], self.image_scale)
        extra = {}
        if "instance" in sample:
            extra["instance"] = resize_pair(sample["image"], sample["instance"], self.image_scale)[1]
        if self.transform is not None:
            self.transform.set_random_seed(aug_seed)
            out = self.transform(image=image, mask=mask, **extra)
            image, mask = out["image"], out["mask"]
            extra = {k: out[k] for k in extra}
        result = {
            "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float(),
            "mask": torch.from_numpy(np.ascontiguousarray(mask)).long(),
        }
        if "instance" in extra:
            instance = torch.from_numpy(np.ascontiguousarray(extra["instance"])).long()
            result["instance"] = torch.where(result["mask"] == 255, 0, instance)
        return result


def index_seed(index: int) -> int:
    """Augmentation seed used when a dataset is indexed without an explicit seed."""
    return int(index) * 7919 + 17


class SeededShuffleSampler(Sampler):
    """Yields ``(index, augmentation_seed)`` pairs; order and seeds depend only on (seed, epoch).

    ``length`` pairs per epoch (default: one pass, ``num_samples``): a longer epoch chains fresh permutations
    (each index once per pass, the last pass cut short), so an epoch can be a fixed number of iterations
    whatever the dataset's size (FasterSeg's 1000 iterations per epoch)."""

    def __init__(self, num_samples: int, seed: int, shuffle: bool = True, length: int | None = None) -> None:
        self.num_samples = num_samples
        self.seed = seed
        self.shuffle = shuffle
        self.length = num_samples if length is None else int(length)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of every epoch."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[tuple[int, int]]:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        passes = max(1, -(-self.length // self.num_samples))
        orders = [torch.randperm(self.num_samples, generator=gen) if self.shuffle else torch.arange(self.num_samples)
                  for _ in range(passes)]
        order = torch.cat(orders)[: self.length]
        seeds = torch.randint(0, 2**31 - 1, (len(order),), generator=gen)
        yield from zip(order.tolist(), seeds.tolist(), strict=True)


class SegmentationDataModule(L.LightningDataModule, ABC):
    """Common loaders, transforms and metadata; subclasses implement :meth:`build_dataset`.

    Training augmentation resizes by a factor uniform in ``scale_range`` or, given ``scales``, by one of those
    factors; an epoch is one pass over the training split or, given ``iters_per_epoch``, that many batches.
    """

    num_classes: int
    class_names: Sequence[str]
    ignore_index: int = 255

    def __init__(
        self,
        batch_size: int = 8,
        val_batch_size: int = 1,
        num_workers: int = 0,
        crop_size: Sequence[int] = (256, 256),
        scale_range: Sequence[float] = (0.5, 2.0),
        jitter: float = 0.2,
        hflip: bool = True,
        image_scale: float = 1.0,
        train_split: str = "train",
        val_split: str = "val",
        max_train_samples: int | None = None,
        max_val_samples: int | None = None,
        seed: int = 0,
        scales: Sequence[float] | None = None,
        iters_per_epoch: int | None = None,
    ) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size
        self.num_workers = num_workers
        self.crop_size = tuple(crop_size)
        self.scale_range = tuple(scale_range)
        self.jitter = jitter
        self.hflip = hflip
        self.image_scale = image_scale
        self.train_split = train_split
        self.val_split = val_split
        self.max_train_samples = max_train_samples
        self.max_val_samples = max_val_samples
        self.seed = seed
        self.scales = tuple(float(v) for v in scales) if scales else None
        if iters_per_epoch is not None and int(iters_per_epoch) < 1:
            raise ValueError(f"data.iters_per_epoch must be a positive integer or null, got {iters_per_epoch}")
        self.iters_per_epoch = None if iters_per_epoch is None else int(iters_per_epoch)
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None

    @abstractmethod
    def build_dataset(self, split: str, transform: A.Compose | None) -> SegmentationDataset:
        """The dataset of ``split`` with ``transform``."""

    def train_transform(self) -> A.Compose:
        return train_transform(self.crop_size, self.scale_range, self.hflip, self.jitter, self.ignore_index,
                               scales=self.scales)

    def eval_transform(self) -> A.Compose:
        return eval_transform()

    def setup(self, stage: str | None = None) -> None:
        """Build the splits the ``stage`` needs, each checked up front (:func:`segnas.data.checks.check_split`)."""
        if self.train_set is None and stage in (None, "fit"):
            self.train_set = self._checked(self.train_split, self.train_transform(), self.max_train_samples)
        if self.val_set is None:
            self.val_set = self._checked(self.val_split, self.eval_transform(), self.max_val_samples)

    def _checked(self, split: str, transform: A.Compose, max_samples: int | None) -> Dataset:
        dataset = _limit(self.build_dataset(split, transform), max_samples)
        full = dataset.dataset if isinstance(dataset, _Subset) else dataset
        check_split(full, len(dataset), split, self.num_classes, self.ignore_index)
        return dataset

    def _loader(self, dataset: Dataset, batch_size: int, sampler: Sampler, drop_last: bool) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            drop_last=drop_last,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches: one pass over the split per epoch or, with ``iters_per_epoch``, that many
        batches per process (FasterSeg's fixed-length epoch: its 800 "epochs" and 0.992 decay per epoch)."""
        assert self.train_set is not None, "call setup('fit') first"
        length = None
        if self.iters_per_epoch is not None:
            world = self.trainer.world_size if self.trainer is not None else 1
            length = self.iters_per_epoch * self.batch_size * world  # shared out over the processes
        sampler = SeededShuffleSampler(len(self.train_set), self.seed, shuffle=True, length=length)
        return self._loader(self.train_set, self.batch_size, sampler, drop_last=len(sampler) > self.batch_size)

    def val_dataloader(self) -> DataLoader:
        assert self.val_set is not None, "call setup() first"
        sampler = SeededShuffleSampler(len(self.val_set), self.seed, shuffle=False)
        return self._loader(self.val_set, self.val_batch_size, sampler, drop_last=False)

    def eval_input_shape(self, input_size: Sequence[int] | None = None) -> tuple[int, int, int, int]:
        """The input stages report MACs and FPS at: ``input_size`` ([H, W]), else the first validation image's
        size (after :meth:`setup`)."""
        if input_size is None:
            assert self.val_set is not None, "call setup() first"
            input_size = self.val_set[0]["image"].shape[-2:]
        height, width = (int(s) for s in input_size)
        return 1, 3, height, width

    def metadata(self) -> dict[str, Any]:
        """Number of classes, class names and ignore index, for models and reports."""
        return {"num_classes": self.num_classes, "class_names": list(self.class_names), "ignore_index": self.ignore_index}


class FolderDataModule(SegmentationDataModule):
    """A dataset read from its standard on-disk layout under ``data.root``.

    Subclasses set ``dataset_name``, ``dataset_cls`` (built as ``dataset_cls(root, split, transform,
    image_scale, ignore_index)``) and :meth:`layout`, the expected layout shown by every error.
    """

    dataset_name: str
    dataset_cls: type[SegmentationDataset]

    def __init__(self, root: str | Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.dataset_name} root {self.root} (data.root) does not exist; {self.layout()}")

    @abstractmethod
    def layout(self) -> str:
        """The expected folder layout, for error messages."""

    def build_dataset(self, split: str, transform: A.Compose | None) -> SegmentationDataset:
        return self.dataset_cls(self.root, split, transform, self.image_scale, self.ignore_index)


class _Subset(Dataset):
    def __init__(self, dataset: SegmentationDataset, size: int) -> None:
        self.dataset = dataset
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        return self.dataset[key]


def _limit(dataset: SegmentationDataset, max_samples: int | None) -> Dataset:
    if max_samples is None or max_samples >= len(dataset):
        return dataset
    return _Subset(dataset, max_samples)
