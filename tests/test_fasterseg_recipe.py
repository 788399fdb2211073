"""FasterSeg's retraining recipe as SasWOT uses it: epochs of a fixed number of iterations, the random scale drawn
from {0.75, 1, 1.25} and the distillation KL averaged over N x C x H x W (issue 25 item 5)."""

import numpy as np
import pytest
import torch

from segnas.data.base import SeededShuffleSampler
from segnas.data.synthetic import SyntheticDataModule
from segnas.data.transforms import train_transform
from segnas.lit.losses import distillation_kl
from segnas.lit.segmentation import SegmentationModule
from segnas.stages import run_stage

from conftest import compose_config


def test_a_longer_epoch_chains_permutations_and_the_default_epoch_is_unchanged() -> None:
    sampler = SeededShuffleSampler(10, seed=3, length=25)
    sampler.set_epoch(2)
    pairs = list(sampler)
    indices = [i for i, _ in pairs]
    assert len(sampler) == len(pairs) == 25
    assert sorted(indices[:10]) == sorted(indices[10:20]) == list(range(10))  # each index once per pass
    assert pairs == list(sampler)  # a function of (seed, epoch) only
    gen = torch.Generator().manual_seed(3 * 1_000_003 + 2)  # one pass: the order and seeds of before
    order, seeds = torch.randperm(10, generator=gen), torch.randint(0, 2**31 - 1, (10,), generator=gen)
    plain = SeededShuffleSampler(10, seed=3)
    plain.set_epoch(2)
    assert list(plain) == list(zip(order.tolist(), seeds.tolist(), strict=True))


def test_iters_per_epoch_fixes_the_batches_of_an_epoch() -> None:
    data = SyntheticDataModule(num_train=6, num_val=2, height=16, width=16, crop_size=(16, 16), batch_size=4,
                               iters_per_epoch=5)
    data.setup("fit")
    assert len(data.train_dataloader()) == 5  # 20 samples of a 6-image split
    with pytest.raises(ValueError, match="iters_per_epoch"):
        SyntheticDataModule(iters_per_epoch=0)


@pytest.mark.slow  # 4-14 s (make test-slow keeps make test under 6 min with the shared data)
def test_a_lightning_epoch_is_iters_per_epoch_steps(tmp_path) -> None:
    cfg = compose_config(["stage=train", "debug=tiny", "+data.iters_per_epoch=7"], tmp_path)  # 16 images: 4 batches
    run_stage(cfg)
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 7


def test_scales_draw_one_of_the_factors() -> None:
    transform = train_transform((40, 40), scales=[0.75, 1.0, 1.25], hflip=False, jitter=0.0)
    scale = transform.transforms[0]
    sizes = set()
    for seed in range(60):
        transform.set_random_seed(seed)
        sizes.add(scale(image=np.zeros((40, 40, 3), np.uint8), mask=np.zeros((40, 40), np.uint8))["image"].shape[:2])
    assert sizes == {(30, 30), (40, 40), (50, 50)}
    with pytest.raises(ValueError, match="scales"):
        train_transform((8, 8), scales=[0.0, 1.0])


def test_element_reduction_is_fastersegs_kl_div_mean() -> None:
    torch.manual_seed(0)
    student, teacher = torch.randn(2, 19, 8, 8), torch.randn(2, 19, 8, 8)
    fasterseg = torch.nn.KLDivLoss()(torch.log_softmax(student, 1), torch.softmax(teacher, 1))  # default "mean"
    assert torch.allclose(distillation_kl(student, teacher, reduction="element"), fasterseg)
    assert torch.allclose(distillation_kl(student, teacher), 19 * fasterseg)  # segnas's per-pixel KL
    with pytest.raises(ValueError, match="distill_reduction"):
        SegmentationModule({"_target_": "segnas.models.build_network", "genotype": "pkg://fasterseg"}, 19,
                           distill_reduction="sum")


@pytest.mark.parametrize("experiment", ["saswot_cityscapes", "saswot_camvid"])
def test_saswot_presets_use_fastersegs_recipe(experiment: str) -> None:
    cfg = compose_config([f"experiment={experiment}", "stage.teacher_ckpt=x.ckpt"])
    assert list(cfg.data.scales) == [0.75, 1.0, 1.25] and cfg.data.iters_per_epoch == 1000
    assert cfg.optim.distill_reduction == "element" and cfg.optim.lr_gamma == 0.992
