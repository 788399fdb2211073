"""stage=panoptic: HyCTAS + Panoptic-DeepLab heads, losses, post-processing, COCO-format output, PQ."""

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from segnas.data import SyntheticDataModule
from segnas.lit.panoptic import PanopticModule, dataset_categories, panoptic_genotype, panoptic_losses
from segnas.metrics import pq_compute
from segnas.metrics.instance_ap import instance_ap
from segnas.metrics.panoptic import rgb2id
from segnas.models.panoptic_deeplab import build_panoptic_hyctas
from segnas.stages import run_stage

from conftest import compose_config

TINY_PANOPTIC = [
    "stage=panoptic",
    "debug=tiny",
    "data.num_val=6",
    "data.val_batch_size=3",
    "stage.filter_multiplier=4",
    "stage.postprocess.stuff_area=64",
]
NET = {
    "_target_": "segnas.models.panoptic_deeplab.build_panoptic_hyctas",
    "genotype": "pkg://hyctas_s",
    "filter_multiplier": 2,
}


@pytest.fixture(scope="module")
def panoptic_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("panoptic")
    return out, run_stage(compose_config(TINY_PANOPTIC, out))


def test_stage_writes_coco_panoptic_predictions_and_pq_in_percent(panoptic_run):
    out, results = panoptic_run
    on_disk = json.loads((out / "results.json").read_text())
    for key in ("PQ", "PQ_th", "PQ_st", "SQ", "RQ"):
        assert 0.0 <= on_disk[key] <= 100.0, key  # ranges: one epoch gives PQ 0 (and mIoU 1.5 %)
        assert on_disk[key] == pytest.approx(results[key])
    pred = json.loads((out / "panoptic_pred.json").read_text())
    assert len(pred["annotations"]) == 6
    things = {c["id"] for c in pred["categories"] if c["isthing"]}
    assert {c["name"] for c in pred["categories"] if c["isthing"]} == {
        "disc_0",
        "box_1",
        "context_a",
        "context_b",
    }
    for ann in pred["annotations"]:
        ids = rgb2id(np.asarray(Image.open(out / "panoptic_pred" / ann["file_name"])))
        assert ids.shape == (64, 64)
        assert set(np.unique(ids)) - {0} == {s["id"] for s in ann["segments_info"]}
    # the reported numbers are panopticapi's on the written files
    again = pq_compute(
        out / "panoptic_gt.json", out / "panoptic_gt", out / "panoptic_pred.json", out / "panoptic_pred"
    )
    assert on_disk["PQ"] == pytest.approx(100 * again["All"]["pq"])
    assert on_disk["PQ_th"] == pytest.approx(100 * again["Things"]["pq"])
    # instance AP (%) of the scored thing segments, alongside PQ, is the one of the written files
    ap = instance_ap(out / "panoptic_gt.json", out / "panoptic_gt", out / "panoptic_pred.json", out / "panoptic_pred")
    assert 0.0 <= on_disk["AP"] <= 100.0 and on_disk["AP"] == pytest.approx(ap["AP"])
    assert all("score" in s for a in pred["annotations"] for s in a["segments_info"] if s["category_id"] in things)
    # the written ground truth is complete: against itself it scores 100
    truth = pq_compute(
        out / "panoptic_gt.json", out / "panoptic_gt", out / "panoptic_gt.json", out / "panoptic_gt"
    )
    assert truth["All"]["pq"] == pytest.approx(1.0) and truth["Things"]["n"] == 4 and truth["Stuff"]["n"] == 2
    assert (out / "per_class_pq.csv").is_file() and (out / "checkpoints" / "last.ckpt").is_file()
    rows = list(csv.DictReader((out / "csv" / "metrics.csv").open()))
    losses = [float(r["train/loss_center"]) for r in rows if r.get("train/loss_center")]
    assert losses and all(np.isfinite(losses))  # the x200 center loss does not diverge (gradient clipping)


def test_heads_predict_at_input_size_and_offsets_are_rescaled():
    net = build_panoptic_hyctas("pkg://hyctas_s", num_classes=5, filter_multiplier=2).eval()
    with torch.no_grad():
        net.offset_head.predictor.weight.zero_()
        net.offset_head.predictor.bias.copy_(torch.tensor([1.0, -2.0]))
        out = net(torch.randn(2, 3, 64, 96))
    assert out["semantic"].shape == (2, 5, 64, 96) and out["center"].shape == (2, 1, 64, 96)
    # offsets predicted at stride 4 are in stride-4 pixels: x4 to input pixels
    assert torch.allclose(out["offset"][:, 0], torch.full((2, 64, 96), 4.0))
    assert torch.allclose(out["offset"][:, 1], torch.full((2, 64, 96), -8.0))


def test_losses_weights_and_normalisation():
    semantic = torch.zeros(1, 2, 2, 2)
    targets = {
        "semantic": torch.zeros(1, 2, 2, dtype=torch.long),
        "semantic_weights": torch.ones(1, 2, 2),
        "center": torch.zeros(1, 1, 2, 2),
        "center_weights": torch.tensor([[[1.0, 1.0], [0.0, 0.0]]]),
        "offset": torch.zeros(1, 2, 2, 2),
        "offset_weights": torch.tensor([[[1.0, 0.0], [0.0, 0.0]]]),
    }
    outputs = {
        "semantic": semantic,
        "center": torch.tensor([[[[0.5, 0.0], [9.0, 9.0]]]]),
        "offset": torch.tensor([[[[1.0, 7.0], [7.0, 7.0]], [[-2.0, 7.0], [7.0, 7.0]]]]),
    }
    losses = panoptic_losses(outputs, targets, top_k_percent=1.0)
    assert losses["semantic"] == pytest.approx(np.log(2))
    assert losses["center"] == pytest.approx(200 * 0.25 / 2)  # MSE over the two weighted pixels, x200
    assert losses["offset"] == pytest.approx(0.01 * 3.0)  # |1| + |-2| on the one weighted pixel, x0.01
    assert losses["total"] == pytest.approx(float(losses["semantic"] + losses["center"] + losses["offset"]))
    targets["offset_weights"].zero_()  # no thing pixel: no offset loss, no NaN
    assert panoptic_losses(outputs, targets)["offset"] == 0.0


class Oracle(torch.nn.Module):
    """Outputs built from the targets of the batch it is given (perfect semantic, centers and offsets)."""

    def __init__(self, module: PanopticModule) -> None:
        super().__init__()
        self.module = [module]
        self.batch: dict | None = None

    def forward(self, x):
        targets = self.module[0].make_targets(self.batch)
        logits = torch.nn.functional.one_hot(targets["semantic"], self.module[0].num_classes).permute(
            0, 3, 1, 2
        )
        return {"semantic": 10.0 * logits.float(), "center": targets["center"], "offset": targets["offset"]}


def test_perfect_heads_give_pq_100_through_targets_postprocessing_and_pq():
    data = SyntheticDataModule(
        num_train=4, num_val=6, height=96, width=96, crop_size=(96, 96), val_batch_size=3
    )
    data.setup("validate")
    module = PanopticModule(NET, dataset_categories(data), stuff_area=1)
    oracle = Oracle(module)
    module.net = oracle
    for i, batch in enumerate(data.val_dataloader()):
        oracle.batch = batch
        module.validation_step(batch, i)
    result = module.val_pq.compute()
    assert result["All"]["pq"] == pytest.approx(1.0)
    assert result["Things"]["n"] == 4 and result["Stuff"]["n"] == 2


def test_categories_from_metadata_or_thing_classes_and_refused_without_instances():
    synthetic = dataset_categories(SyntheticDataModule(num_classes=5))
    assert [(c["id"], c["isthing"]) for c in synthetic] == [(0, 0), (1, 0), (2, 1), (3, 1), (4, 1)]

    class Semantic:
        def metadata(self):
            return {"num_classes": 2, "class_names": ["road", "sky"], "ignore_index": 255}

    with pytest.raises(ValueError, match="needs a dataset with instance labels"):
        dataset_categories(Semantic())


def test_panoptic_refuses_a_genotype_of_another_space_by_name(tmp_path):
    assert panoptic_genotype("pkg://hyctas_s").space_name == "hyctas"
    cfg = compose_config([*TINY_PANOPTIC, "stage.genotype=pkg://fasterseg"], tmp_path)
    with pytest.raises(ValueError, match="is a fasterseg genotype"):
        run_stage(cfg)
