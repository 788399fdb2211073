"""stage=predict: Cityscapes test-server label-id PNGs (issue 25 item 6b): the train-id -> label-id mapping,
the file layout and resolution, and the written files' mIoU equal to stage=evaluate's."""

import json
import shutil

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image

from segnas.data.cityscapes import CITYSCAPES_LABEL_IDS, label_to_train_lut, train_to_label_ids
from segnas.data.transforms import eval_transform
from segnas.lit.retrain import RetrainModule
from segnas.models import deploy_net
from segnas.stages import run_stage

from conftest import compose_config, shared_dataset

FRAME = "frankfurt_000000_000294_leftImg8bit.png"


def test_train_ids_map_to_the_cityscapes_label_ids_and_back():
    train = np.array([[*range(19), 255]], dtype=np.uint8)
    ids = train_to_label_ids(train)
    assert ids.dtype == np.uint8
    assert ids[0, :19].tolist() == [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33]
    assert ids[0, 19] == 0  # ignore -> "unlabeled"
    assert (label_to_train_lut()[ids] == train).all()
    with pytest.raises(ValueError, match=r"0\.\.255"):
        train_to_label_ids(np.array([-1, 3]))


@pytest.fixture(scope="module")
def cityscapes_ckpt(tmp_path_factory):
    """An untrained 19-class HyCTAS checkpoint as stage=retrain writes it (BatchNorm statistics not trivial)."""
    torch.manual_seed(0)
    module = RetrainModule({"_target_": "segnas.models.build_network", "genotype": "pkg://hyctas_s",
                            "filter_multiplier": 4, "output_stride": 8}, num_classes=19)
    module.net.train()
    with torch.no_grad():
        for _ in range(3):
            module.net(torch.randn(2, 3, 64, 64) * 2 + 0.5)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
    trainer.strategy.connect(module)
    path = tmp_path_factory.mktemp("ckpt") / "retrain.ckpt"
    trainer.save_checkpoint(path)
    return module.eval(), str(path)


def test_stage_writes_label_ids_at_full_resolution_with_the_benchmark_names(tmp_path, cityscapes_ckpt):
    module, ckpt = cityscapes_ckpt
    root = tmp_path / "cityscapes"
    source = shared_dataset("cityscapes")
    shutil.copytree(source, root)
    shutil.copytree(root / "leftImg8bit" / "val", root / "leftImg8bit" / "test")  # a split without labels
    data = ["data=cityscapes", f"data.root={root}", "data.num_workers=0", f"ckpt_path={ckpt}"]
    results = {}
    for split in ("val", "test"):
        out = tmp_path / split
        results[split] = run_stage(compose_config(["stage=predict", f"stage.split={split}", *data], out))
        path = out / split / "frankfurt" / FRAME
        with Image.open(path) as img:
            assert img.mode == "L" and img.size == (256, 128)  # the image's own size
            written = np.asarray(img)
        assert set(np.unique(written)) <= set(CITYSCAPES_LABEL_IDS)
        # the file holds the network's prediction at full resolution, mapped to label ids
        image = np.asarray(Image.open(root / "leftImg8bit" / "val" / "frankfurt" / FRAME).convert("RGB"))
        tensor = torch.from_numpy(eval_transform()(image=image)["image"]).permute(2, 0, 1)[None]
        with torch.no_grad():
            expected = deploy_net(module.net)(tensor).argmax(1)[0].numpy()
        assert (label_to_train_lut()[written] == expected).all()
    assert "test/mIoU" not in results["test"] and results["test"]["images"] == 1
    # the written val files score what stage=evaluate measures on the network
    evaluate = run_stage(compose_config(["stage=evaluate", "speed.duration_s=0.05", *data], tmp_path / "ev"))
    assert 0.0 < results["val"]["val/mIoU"] == pytest.approx(evaluate["val/mIoU"], abs=1e-6)
    assert json.loads((tmp_path / "val" / "results.json").read_text())["scored_images"] == 1


def test_stage_needs_a_cityscapes_root(tmp_path, cityscapes_ckpt):
    with pytest.raises(ValueError, match="data=cityscapes"):
        run_stage(compose_config(["stage=predict", f"ckpt_path={cityscapes_ckpt[1]}"], tmp_path))
