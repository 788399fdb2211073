"""Training learns (default suite, seconds each): seeded tiny runs reach well above chance on synthetic scenes.

Three paths: the segmenter (``SegmentationModule``, stage=train's DeepLabV3+), a retrained HyCTAS genotype
(``RetrainModule`` with auxiliary heads, stage=retrain's network) and the weight-sharing supernet
(``SupernetModule``, then one sub-network scored as the search scores it: ``SupernetMIoU``, BN recalibrated).
Chance is the mIoU of the best constant prediction (one class everywhere) on the validation split: 8.2 % at
64x64, 8.0 % at 32x32. Measured on one CPU thread (torch 2.14): segmenter 29.2 %, retrained 26.8 %, supernet
sub-network 23.1 % (other sub-networks 15-22 %); the checks ask for 2.5x chance (2x for the supernet, whose
sub-networks share its 32 steps). A head that outputs a constant stays at chance (measured: exactly chance)
and fails the same check (last test).
"""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch import Tensor, nn

from segnas.data.synthetic import SyntheticDataModule
from segnas.lit.retrain import RetrainModule
from segnas.lit.segmentation import SegmentationModule
from segnas.lit.supernet import SupernetModule
from segnas.metrics.segmentation import confusion_matrix, miou
from segnas.search.objectives import SupernetMIoU

CLASSES = 6
DEEPLAB = {"_target_": "segnas.models.deeplab.DeepLabV3Plus", "backbone": "resnet18", "output_stride": 16,
           "aspp_channels": 16, "decoder_channels": 16, "low_level_channels": 8, "pretrained": False}
HYCTAS_S = {"_target_": "segnas.models.build_network", "genotype": "pkg://hyctas_s", "filter_multiplier": 4,
            "output_stride": 8, "aux_heads": True}
SUPERNET_SPACE = {"name": "hyctas", "layers": 4, "min_layers": 4, "filter_multiplier": 4}


def synthetic(size: int) -> SyntheticDataModule:
    """64 training scenes and 8 validation scenes of ``size`` x ``size`` pixels, no scale or colour jitter."""
    return SyntheticDataModule(num_train=64, num_val=8, height=size, width=size, num_classes=CLASSES,
                               batch_size=8, val_batch_size=8, crop_size=(size, size), scale_range=(1.0, 1.0),
                               jitter=0.0, seed=0)


def chance_miou(data: SyntheticDataModule) -> float:
    """mIoU (%) of the best constant prediction (one class at every pixel) on the validation split."""
    data.setup("validate")
    masks = torch.cat([batch["mask"] for batch in data.val_dataloader()])
    return max(miou(confusion_matrix(torch.full_like(masks, c), masks, CLASSES))[0] for c in range(CLASSES))


def fit(module: L.LightningModule, data: SyntheticDataModule, epochs: int) -> float:
    """Train ``module`` for ``epochs`` (seeded, deterministic, CPU), validate once; return val/mIoU (%)."""
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=epochs, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        check_val_every_n_epoch=epochs, deterministic=True)
    trainer.fit(module, data)
    return float(trainer.callback_metrics["val/mIoU"])


class ConstantHead(nn.Module):
    """A broken network: ``net``'s output shape, the same (learned) logits at every pixel of every image."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.logits = nn.Parameter(torch.zeros(CLASSES))

    def forward(self, x: Tensor) -> Tensor:
        out = self.net(x)
        return self.logits.view(1, -1, 1, 1).expand_as(out) + 0 * out


def check_learned(score: float, chance: float, factor: float = 2.5) -> None:
    """Fail unless the mIoU ``score`` is above ``factor`` x ``chance``."""
    assert score > factor * chance, f"mIoU {score:.2f} % is not above {factor} x chance ({chance:.2f} %)"


def segmenter_miou(broken: bool = False) -> tuple[float, float]:
    """val mIoU of the DeepLabV3+ segmenter after 8 steps at 32x32 (``broken``: with a constant head), chance."""
    L.seed_everything(0, verbose=False)
    module = SegmentationModule(DEEPLAB, num_classes=CLASSES, lr=0.05, warmup_steps=0)
    if broken:
        module.net = ConstantHead(module.net)
    data = synthetic(32)
    return fit(module, data, epochs=1), chance_miou(data)


def test_the_segmenter_learns() -> None:
    check_learned(*segmenter_miou())


def test_a_retrained_hyctas_genotype_learns() -> None:
    L.seed_everything(0, verbose=False)
    module = RetrainModule(HYCTAS_S, num_classes=CLASSES, lr=0.1, warmup_steps=0)
    data = synthetic(64)
    check_learned(fit(module, data, epochs=4), chance_miou(data))


def test_a_supernet_sub_network_learns() -> None:
    L.seed_everything(0, verbose=False)
    module = SupernetModule(SUPERNET_SPACE, num_classes=CLASSES, lr=0.2, val_archs=1)
    data = synthetic(64)
    fit(module, data, epochs=4)
    data.setup("fit")
    recalibration = [(b["image"], b["mask"]) for b in data.train_dataloader()]
    validation = [(b["image"], b["mask"]) for b in data.val_dataloader()]
    score = SupernetMIoU(module.supernet, recalibration, validation, CLASSES)(module.val_genotypes[0])
    check_learned(score, chance_miou(data), factor=2.0)


def test_a_constant_head_stays_at_chance_and_fails_the_check() -> None:
    score, chance = segmenter_miou(broken=True)
    assert score <= chance + 1e-4  # the best a constant can do
    with pytest.raises(AssertionError, match="is not above"):
        check_learned(score, chance)
