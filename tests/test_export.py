"""stage=export: TorchScript and ONNX files whose outputs match PyTorch (ONNX checked with onnxruntime)."""

import json

import lightning as L
import numpy as np
import pytest
import torch

from segnas.lit.retrain import RetrainModule
from segnas.lit.segmentation import SegmentationModule
from segnas.stages import run_stage
from segnas.stages.export import onnx_logits

from conftest import compose_config

ort = pytest.importorskip("onnxruntime")


def _checkpoint(module: L.LightningModule, path) -> str:
    """Write a checkpoint of an (untrained) module as stage=train/retrain would."""
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
    trainer.strategy.connect(module)
    trainer.save_checkpoint(path)
    return str(path)


@pytest.fixture(scope="module")
def hyctas_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    module = RetrainModule(
        {
            "_target_": "segnas.models.build_network",
            "genotype": "pkg://hyctas_s",
            "filter_multiplier": 4,
            "output_stride": 4,
            "aux_heads": True,
        },
        num_classes=6,
    )
    # non-trivial BatchNorm statistics, so a wrong eval/train mode in the export would show
    module.net.train()
    with torch.no_grad():
        for _ in range(3):
            module.net(torch.randn(2, 3, 64, 64) * 3 + 1)
    return _checkpoint(module, tmp_path_factory.mktemp("ckpt") / "retrain.ckpt")


def test_export_hyctas_retrain_checkpoint_matches_pytorch(hyctas_ckpt, tmp_path):
    cfg = compose_config(
        ["stage=export", "num_threads=1", f"ckpt_path={hyctas_ckpt}", "data.crop_size=[64,96]"], tmp_path
    )
    results = run_stage(cfg)
    assert json.loads((tmp_path / "results.json").read_text())["input"] == "64x96"
    net = SegmentationModule.load_from_checkpoint(hyctas_ckpt, map_location="cpu").net.eval()
    image = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        expected = net(image)
        scripted = torch.jit.load(results["torchscript"])(image)
    assert expected.shape == (1, 6, 64, 96)
    assert torch.allclose(scripted, expected, atol=1e-4)
    onnx_out = onnx_logits(tmp_path / "model.onnx", image)
    np.testing.assert_allclose(onnx_out, expected.numpy(), atol=1e-3, rtol=1e-3)
    assert results["onnx_max_abs_diff"] < 1e-3 and results["torchscript_max_abs_diff"] < 1e-4
    # the exported graph has no auxiliary head weights
    scripted_params = sum(p.numel() for p in torch.jit.load(results["torchscript"]).parameters())
    assert (
        scripted_params
        == sum(p.numel() for p in net.net.parameters())
        < sum(p.numel() for p in net.parameters())
    )


def test_export_deeplab_train_checkpoint_with_dynamic_onnx_shapes(tmp_path):
    torch.manual_seed(0)
    module = SegmentationModule(
        {
            "_target_": "segnas.models.deeplab.DeepLabV3Plus",
            "backbone": "resnet18",
            "aspp_channels": 16,
            "decoder_channels": 16,
            "low_level_channels": 8,
        },
        num_classes=3,
    )
    ckpt = _checkpoint(module, tmp_path / "train.ckpt")
    cfg = compose_config(
        [
            "stage=export",
            "num_threads=1",
            f"ckpt_path={ckpt}",
            "stage.formats=[onnx]",
            "stage.input_size=[64,64]",
            "stage.dynamic_shapes=true",
        ],
        tmp_path / "out",
    )
    results = run_stage(cfg)
    assert "torchscript" not in results and results["onnx_max_abs_diff"] < 1e-3
    image = torch.randn(2, 3, 96, 128)  # another batch size and resolution than the traced one
    with torch.no_grad():
        expected = module.net.eval()(image).numpy()
    np.testing.assert_allclose(
        onnx_logits(tmp_path / "out" / "model.onnx", image), expected, atol=1e-3, rtol=1e-3
    )


@pytest.mark.slow  # 3-7 s (make test-slow keeps make test under 6 min on a slow host)
def test_export_fasterseg_retrain_checkpoint_without_aux_heads(tmp_path):
    torch.manual_seed(0)
    module = RetrainModule(
        {"_target_": "segnas.models.build_network", "genotype": "pkg://fasterseg", "aux_heads": True},
        num_classes=4,
    )
    ckpt = _checkpoint(module, tmp_path / "retrain.ckpt")
    cfg = compose_config(
        ["stage=export", "num_threads=1", f"ckpt_path={ckpt}", "stage.input_size=[64,64]"], tmp_path / "out"
    )
    results = run_stage(cfg)
    assert results["torchscript_max_abs_diff"] < 1e-4 and results["onnx_max_abs_diff"] < 1e-3
    image = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = module.net.eval()(image)
    np.testing.assert_allclose(
        onnx_logits(tmp_path / "out" / "model.onnx", image), expected.numpy(), atol=1e-3, rtol=1e-3
    )


def test_export_errors_name_what_is_wrong(tmp_path, hyctas_ckpt):
    with pytest.raises(ValueError, match="needs ckpt_path"):
        run_stage(compose_config(["stage=export"], tmp_path))
    with pytest.raises(ValueError, match="unknown"):
        run_stage(
            compose_config(
                ["stage=export", "num_threads=1", f"ckpt_path={hyctas_ckpt}", "stage.formats=[tflite]"],
                tmp_path,
            )
        )
