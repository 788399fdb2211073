"""Autocast numerics: bf16/fp16 forwards of TRAINED networks agree with fp32 (on the CPU; on CUDA too with
`make bench-gpu`, TF32 off, same tolerances: calibrated on the CPU, not yet on a GPU).

Random weights hide precision problems (activations stay small and logits near-uniform), so each network is
trained for 12 SGD steps on synthetic scenes, its BatchNorm statistics re-estimated on the training images
(as a search scores a sub-network), then its eval-mode logits compared on held-out scenes. Measured (torch
2.14, one thread; HyCTAS-S / a genotype with every attention operator): relative L2 error bf16 0.66 / 0.48 %,
fp16 0.094 / 0.057 %; argmax agreement bf16 99.69 / 99.80 %, fp16 99.94 / 99.997 %. Checked at about 2.5x:
bf16 < 1.5 %, fp16 < 0.25 %; agreement >= 99 % / 99.8 %. Batch norm evaluated in the autocast dtype (instead
of fp32 statistics) gives fp16 0.39 % and fails.
(Without the re-estimation, 12 steps leave HyCTAS-S's eval-mode activations above fp16's 65504 and fp16
overflows: a property of unconverged BN statistics, not of the code, so that state is not what this checks.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from segnas.data.synthetic import SyntheticDataModule
from segnas.models import build_network
from segnas.search.objectives import bn_recalibrate
from segnas.spaces import get_space
from segnas.spaces.hyctas import KNOWN_OPS, HyCTASGenotype

CLASSES = 6
ATTENTION_OPS = {"self_attention", "self_attention_reference", "transformer"}
TOLERANCE = {torch.bfloat16: (0.015, 0.99), torch.float16: (0.0025, 0.998)}  # relative L2 error, argmax agreement


def every_attention_op() -> HyCTASGenotype:
    """The first sample of a 6-cell space with every operator that holds all three attention operators."""
    space = get_space("hyctas", layers=6, ops=KNOWN_OPS, filter_multiplier=4)
    rng = np.random.default_rng(0)
    samples = (space.sample(rng) for _ in range(100))
    return next(g for g in samples if {op for b in g.branches for op in b.ops} >= ATTENTION_OPS)


NETWORKS: dict[str, Callable[[], nn.Module]] = {
    "hyctas_s": lambda: build_network("pkg://hyctas_s", num_classes=CLASSES, filter_multiplier=4, output_stride=8),
    "every_attention_op": lambda: build_network(every_attention_op(), num_classes=CLASSES, filter_multiplier=4),
}


@pytest.fixture(scope="module", params=["cpu", pytest.param("cuda", marks=[
    pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")])])
def device(request: pytest.FixtureRequest) -> Iterator[torch.device]:
    """The device, with TF32 off (cuDNN convolutions use it by default) so fp32 is the reference."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield torch.device(request.param)
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.fixture(scope="module")
def scenes(device: torch.device) -> tuple[list[Tensor], list[Tensor], Tensor]:
    """16 normalised 64x64 training scenes (4 batches of images, 4 of masks) and 8 held-out images."""
    data = SyntheticDataModule(num_train=16, num_val=8, height=64, width=64, num_classes=CLASSES, batch_size=4,
                               val_batch_size=8, crop_size=(64, 64), scale_range=(1.0, 1.0), jitter=0.0)
    data.setup("fit")
    train = list(data.train_dataloader())
    held_out = next(iter(data.val_dataloader()))["image"]
    return [b["image"].to(device) for b in train], [b["mask"].to(device) for b in train], held_out.to(device)


@pytest.fixture(scope="module", params=list(NETWORKS))
def trained(request: pytest.FixtureRequest, scenes: tuple[list[Tensor], list[Tensor], Tensor],
            device: torch.device) -> nn.Module:
    """The network after 12 SGD steps (lr 0.05, momentum 0.9) and BN re-estimation, in eval mode."""
    images, masks, _ = scenes
    torch.manual_seed(0)
    net = NETWORKS[request.param]().to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
    for step in range(12):
        optimizer.zero_grad()
        F.cross_entropy(net(images[step % 4]), masks[step % 4]).backward()
        optimizer.step()
    bn_recalibrate(net, images)
    return net.eval()


@pytest.mark.parametrize("dtype", list(TOLERANCE), ids=["bf16", "fp16"])
def test_autocast_matches_fp32_on_trained_weights(trained: nn.Module, scenes, dtype: torch.dtype) -> None:
    held_out = scenes[2]
    with torch.no_grad():
        expected = trained(held_out)
        with torch.autocast(held_out.device.type, dtype=dtype):
            out = trained(held_out).float()
    assert expected.abs().max() > 3  # trained: confident logits, not the near-uniform ones of random weights
    max_error, min_agreement = TOLERANCE[dtype]
    error = ((out - expected).norm() / expected.norm()).item()
    agreement = (out.argmax(1) == expected.argmax(1)).float().mean().item()
    assert error < max_error and agreement >= min_agreement, (error, agreement)
