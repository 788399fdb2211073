"""stage=retrain: genotype -> HyCTAS network with aux heads, scheduled drop path, multi-scale evaluation."""

import json

import pytest
import torch
import torch.nn.functional as F

from segnas.lit.inference import multi_scale_probs, scaled_size
from segnas.lit.losses import hard_pixel_ce
from segnas.lit.retrain import RetrainModule
from segnas.lit.segmentation import SegmentationModule
from segnas.models import build_network, deploy_net
from segnas.spaces import load_genotype, save_genotype
from segnas.spaces.hyctas import HyCTASWithAux
from segnas.spaces.hyctas.network import HyCTASNet
from segnas.stages import run_stage
from segnas.stages.retrain import net_config

from conftest import compose_config

TINY_RETRAIN = [  # arch= selects model=hyctas: TINY_TRAIN's DeepLab settings do not apply
    "debug=tiny",
    "stage.filter_multiplier=4",
    "optim.top_k_percent=0.5",
]


@pytest.fixture(scope="module")
def retrained(tmp_path_factory):
    out = tmp_path_factory.mktemp("retrain")
    cfg = compose_config(["stage=retrain", "arch=hyctas_s", *TINY_RETRAIN], out)
    return out, run_stage(cfg)


def test_retrain_stage_reports_miou_cost_and_self_contained_checkpoint(retrained):
    out, results = retrained
    on_disk = json.loads((out / "results.json").read_text())
    assert 0.0 <= on_disk["val/mIoU"] <= 100.0  # a range: 4 steps stay at chance (8.2 %; test_learning.py)
    assert on_disk["macs_g"] > 0 and on_disk["flops_g"] == on_disk["macs_g"] and on_disk["params_m"] > 0 and on_disk["fps"] > 0
    assert on_disk["input"] == "64x64"
    assert on_disk["space"] == "hyctas"
    assert on_disk["net"] == {
        "_target_": "segnas.models.build_network",
        "filter_multiplier": 4,
        "output_stride": 8,
        "aux_heads": True,
    }
    # the checkpoint rebuilds the network without the genotype file and loads with the base module
    module = SegmentationModule.load_from_checkpoint(results["last_ckpt"], map_location="cpu")
    assert module.hparams.net_config["genotype"] == load_genotype("pkg://hyctas_s").to_dict()
    assert isinstance(module.net, HyCTASWithAux)
    net = module.net.eval()
    x = torch.randn(1, 3, 64, 64)
    assert torch.equal(net(x), deploy_net(net)(x))
    # reported params exclude the auxiliary heads
    params = sum(p.numel() for p in deploy_net(net).parameters())
    assert on_disk["params_m"] == pytest.approx(params / 1e6)
    assert params < sum(p.numel() for p in net.parameters())
    assert (out / "per_class_iou.csv").is_file() and (out / "checkpoints" / "last.ckpt").is_file()


def test_retrain_distills_from_a_teacher_checkpoint(retrained, tmp_path):
    _, results = retrained
    cfg = compose_config(
        [
            "stage=retrain",
            "arch=hyctas_s",
            *TINY_RETRAIN,
            f"stage.teacher_ckpt={results['last_ckpt']}",
            "optim.distill_weight=0.5",
            "trainer.limit_train_batches=1",
        ],
        tmp_path,
    )
    run_stage(cfg)
    history = (tmp_path / "csv" / "metrics.csv").read_text()
    assert "train/loss_kd_step" in history and "train/loss_aux0_step" in history


def test_aux_loss_is_weighted_top_k_ce_of_each_aux_output():
    torch.manual_seed(0)
    module = RetrainModule(
        net_config={
            "_target_": "segnas.models.build_network",
            "genotype": "pkg://hyctas_l",
            "filter_multiplier": 2,
            "output_stride": 4,
            "aux_heads": True,
        },
        num_classes=3,
        aux_weight=0.2,
        top_k_percent=0.5,
    )
    logits, aux = torch.randn(2, 3, 8, 8), [torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)]
    mask = torch.randint(0, 3, (2, 8, 8))
    mask[0, 0] = 255
    losses = module.loss((logits, aux), {"mask": mask, "image": torch.zeros(2, 3, 8, 8)})
    ce = [hard_pixel_ce(t, mask, 255, 0.5) for t in (logits, *aux)]
    assert losses["ce"] == pytest.approx(float(ce[0]))
    assert losses["aux0"] == pytest.approx(0.2 * float(ce[1]))
    assert losses["total"] == pytest.approx(float(ce[0] + 0.2 * ce[1] + 0.2 * ce[2]))
    # HyCTAS-L has branch outputs at strides 8, 16, 32: aux heads on the last two only
    assert module.net.aux_index == [1, 2]


def test_without_aux_the_net_is_a_plain_hyctas_net():
    net = build_network("pkg://hyctas_s", 5, filter_multiplier=2)
    assert isinstance(net, HyCTASNet) and deploy_net(net) is net


def test_multi_scale_flip_averages_softmax_over_views():
    torch.manual_seed(0)
    net = build_network("pkg://hyctas_s", 4, filter_multiplier=2).eval()
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        single = net(x).softmax(1)
        flipped = net(x.flip(-1)).flip(-1).softmax(1)
        small = F.interpolate(
            net(F.interpolate(x, size=(32, 64), mode="bilinear")), size=(64, 96), mode="bilinear"
        ).softmax(1)
    assert torch.allclose(multi_scale_probs(net, x), single, atol=1e-6)
    assert torch.allclose(multi_scale_probs(net, x, flip=True), (single + flipped) / 2, atol=1e-6)
    assert scaled_size((64, 96), 0.5, 32) == (32, 64)  # 48 -> 64 (nearest multiple of 32)
    assert torch.allclose(multi_scale_probs(net, x, scales=[0.5, 1.0]), (single + small) / 2, atol=1e-5)


def test_genotype_from_a_search_yaml_and_missing_genotype(tmp_path):
    path = save_genotype(load_genotype("pkg://hyctas_m"), tmp_path / "rank_000.yaml")
    cfg = compose_config(["stage=retrain", f"stage.genotype={path}", "stage.output_stride=4"])
    config = net_config(cfg.stage)
    assert config["genotype"] == load_genotype(path).to_dict()
    assert (config["filter_multiplier"], config["output_stride"]) == (12, 4)
    cfg.stage.genotype = None
    with pytest.raises(ValueError, match="needs arch=hyctas_s"):
        net_config(cfg.stage)


def test_paper_recipe_experiment_configs():
    cfg = compose_config(["experiment=hyctas_s_cityscapes"])
    assert cfg.stage.name == "retrain" and cfg.data.crop_size == [512, 1024] and cfg.data.batch_size == 32
    assert (cfg.stage.filter_multiplier, cfg.stage.output_stride) == (12, 8)
    assert (cfg.optim.lr, cfg.optim.momentum, cfg.optim.weight_decay, cfg.optim.top_k_percent) == (
        0.005,
        0.9,
        5e-4,
        0.2,
    )
    assert (cfg.stage.drop_path_rate, cfg.stage.aux_weight) == (0.2, 0.2)
    cfg = compose_config(["experiment=hyctas_l_cityscapes"])
    assert (cfg.stage.filter_multiplier, cfg.stage.output_stride) == (16, 4)
    cfg = compose_config(["experiment=hyctas_retrain_synthetic"])
    assert cfg.stage.name == "retrain" and cfg.data._target_.endswith("SyntheticDataModule")
    assert (cfg.stage.genotype, cfg.stage.filter_multiplier, cfg.stage.output_stride) == ("pkg://hyctas_s", 8, 8)
