"""``stage=profile`` and ``stage=supernet`` end to end on tiny budgets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from segnas.stages import run_stage

from conftest import compose_config

TINY_SUPERNET = ["stage=supernet", "debug=tiny", "stage.module.val_archs=2"]


@pytest.mark.slow  # 4-14 s (make test-slow keeps make test under 6 min with the shared data)
def test_profile_stage_reports_table2_and_arch(tmp_path: Path) -> None:
    cfg = compose_config(
        [
            "stage=profile",
            "arch=hyctas_s",
            "arch.filter_multiplier=4",
            "stage.latency=false",
            "stage.ops=[conv,lightweight_conv,self_attention]",
            "stage.arch_input=[1,3,128,256]",
        ],
        tmp_path,
    )
    run_stage(cfg)
    results = json.loads((tmp_path / "results.json").read_text())
    ops = results["ops"]
    assert ops["conv"]["macs_g"] == pytest.approx(1.209, abs=1e-3)
    assert ops["conv"]["params_m"] == pytest.approx(0.5903, abs=1e-4)
    assert ops["lightweight_conv"]["macs_g"] == pytest.approx(0.440, abs=1e-3)
    assert ops["conv"]["macs_ratio_scaled"] == pytest.approx(4.0, rel=1e-3)
    assert ops["self_attention"]["macs_ratio_scaled"] > 8.0
    arch = results["arch"]
    assert arch["name"] == "hyctas_s" and arch["input"] == [1, 3, 128, 256]
    assert arch["macs_g"] > 0 and arch["params_m"] > 0 and arch["paper_params_m"] == 1.5
    table = (tmp_path / "profile.md").read_text()
    assert "| conv | 1.209 | 1.2 | 0.5903 | 0.59 |" in table and "| hyctas_s | segnas | 4 | 8 |" in table


def test_supernet_stage_trains_and_resumes_exactly(tmp_path: Path) -> None:
    straight = run_stage(compose_config([*TINY_SUPERNET, "trainer.max_epochs=2"], tmp_path / "a"))
    run_stage(compose_config([*TINY_SUPERNET, "trainer.max_epochs=1"], tmp_path / "b"))
    resumed = run_stage(compose_config([*TINY_SUPERNET, "trainer.max_epochs=2"], tmp_path / "b"))
    assert straight["global_step"] == resumed["global_step"] == 8
    assert 0.0 <= straight["val/mIoU"] <= 100.0  # a range: 8 steps shared by sub-networks, 3.8 % (chance 8.2 %)
    a = torch.load(straight["last_ckpt"], map_location="cpu", weights_only=False)["state_dict"]
    b = torch.load(resumed["last_ckpt"], map_location="cpu", weights_only=False)["state_dict"]
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
