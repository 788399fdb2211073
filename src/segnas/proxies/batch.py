"""The one batch a zero-cost proxy scores a network on: random tensors or a dataset's first training batch."""

from __future__ import annotations

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

INPUTS = ("auto", "random", "data")


def resolve_inputs(inputs: str, data: DictConfig | None) -> str:
    """``inputs`` resolved: ``auto`` is ``data`` (a training batch) for a dataset on disk and ``random`` for the
    built-in synthetic scenes or no data at all (no files: the default commands); otherwise as given."""
    if inputs not in INPUTS:
        raise ValueError(f"proxy batch inputs must be one of {list(INPUTS)}, got {inputs!r}")
    if inputs != "auto":
        return inputs
    synthetic = data is None or str(data.get("_target_", "")).endswith("SyntheticDataModule")
    return "random" if synthetic else "data"


def scoring_batch(
    data: DictConfig | None, inputs: str, batch_size: int, size: tuple[int, int], num_classes: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """One batch for zero-cost proxies: images, labels and their class count.

    ``inputs="random"``: N(0, 1) images with uniform labels over ``num_classes`` (seeded);
    ``inputs="data"``: the first training batch of the ``data`` config at ``size`` and its class count.
    """
    height, width = size
    if inputs == "random":
        gen = torch.Generator().manual_seed(seed)
        images = torch.randn(batch_size, 3, height, width, generator=gen)
        return images, torch.randint(0, num_classes, (batch_size, height, width), generator=gen), num_classes
    if inputs == "data":
        if data is None:
            raise ValueError("proxy batch inputs=data needs a `data` config group (e.g. data=synthetic)")
        datamodule = instantiate(data, batch_size=batch_size, crop_size=[height, width], _convert_="all")
        datamodule.setup("fit")
        batch = next(iter(datamodule.train_dataloader()))
        return batch["image"], batch["mask"], int(datamodule.metadata()["num_classes"])
    raise ValueError(f"proxy batch inputs must be 'random' or 'data', got {inputs!r}")


def benchmark_batch(
    data: DictConfig | None, inputs: str, batch_size: int, resolution: int, num_classes: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """A square scoring batch for a benchmark's networks with ``num_classes`` outputs (TransNAS-Bench-101:
    17); data classes the benchmark's head lacks are ignored (255)."""
    images, labels, _ = scoring_batch(data, inputs, batch_size, (resolution, resolution), num_classes, seed)
    labels = labels.clone()
    labels[labels >= num_classes] = 255
    return images, labels
