"""``model.head=reference``: HyCTAS-S/M/L as the public reference code builds them (issue 25 item 1), and
Table 2's Transformer at the paper's width beside the explained self-attention row (item 2).

The parameter counts are the reference code's own (``../shared/research/hyctas.md`` §6.2), built without any
forward pass; the forward checks run at a tiny filter multiplier and input.
"""

from __future__ import annotations

import pytest
import torch

from segnas.callbacks.drop_path import set_drop_path_rate
from segnas.metrics import attention_macs, count_params
from segnas.models import build_network
from segnas.nn import IdentitySkip, LightweightConv2x, SelfAttention, SelfAttentionReference
from segnas.spaces.hyctas import HyCTASReferenceNet, HyCTASReferenceWithAux
from segnas.spaces.hyctas.profile import PAPER_TRANSFORMER, REFERENCE_TABLE3, profile_ops
from segnas.stages.retrain import net_config

from conftest import compose_config


@pytest.mark.parametrize(("arch", "fm", "os"), sorted(REFERENCE_TABLE3))
def test_reference_network_params_are_the_reference_codes(arch: str, fm: int, os: int) -> None:
    net = build_network(f"pkg://{arch}", 19, filter_multiplier=fm, output_stride=os, head="reference")
    assert round(count_params(net) / 1e6, 3) == REFERENCE_TABLE3[arch, fm, os][2]


def test_headline_counts_of_the_issue() -> None:
    s = build_network("pkg://hyctas_s", 19, filter_multiplier=12, output_stride=8, head="reference")
    big = build_network("pkg://hyctas_l", 19, filter_multiplier=16, output_stride=4, head="reference")
    assert count_params(s) == 8_052_269 and count_params(big) == 44_794_423


def test_reference_cells_use_the_reference_ops_without_skips() -> None:
    net = build_network("pkg://hyctas_l", 19, filter_multiplier=4, output_stride=4, head="reference")
    own = build_network("pkg://hyctas_l", 19, filter_multiplier=4, output_stride=4)
    assert isinstance(net, HyCTASReferenceNet)
    cells = list(net.cells.modules())
    assert not any(isinstance(m, (IdentitySkip, SelfAttention)) for m in cells)
    assert sum(isinstance(m, SelfAttentionReference) for m in cells) == 3  # one SA cell per branch
    assert sum(isinstance(m, IdentitySkip) for m in own.cells.modules()) == 32  # segnas's skips (32 of 48)
    assert net.stem.stem4[0].act is False and own.stem.stem4[0].act is True


@pytest.mark.parametrize(("arch", "n_aux"), [("hyctas_s", 2), ("hyctas_m", 2), ("hyctas_l", 2)])
@pytest.mark.parametrize("os", [4, 8])
def test_reference_network_forward_and_aux_heads(arch: str, n_aux: int, os: int) -> None:
    torch.manual_seed(0)
    net = build_network(f"pkg://{arch}", 5, filter_multiplier=2, output_stride=os, head="reference",
                        aux_heads=True)
    assert isinstance(net, HyCTASReferenceWithAux) and len(net.aux) == n_aux
    x = torch.randn(2, 3, 64, 128)  # batch 2: the FFM's squeeze-and-excite BN sees one pixel per image
    logits, aux = net.train()(x)
    assert logits.shape == (2, 5, 64, 128) and [a.shape for a in aux] == [logits.shape] * n_aux
    net.eval()
    with torch.no_grad():
        torch.testing.assert_close(net(x), net.net(x))
    # drop path (stage=retrain's schedule sets every DropPath) reaches the cells only, as in the reference
    assert set_drop_path_rate(net, 0.2) == set_drop_path_rate(net.net.cells, 0.2) > 0


def test_three_branch_aggregation_taps_the_reference_features() -> None:
    net = build_network("pkg://hyctas_l", 19, filter_multiplier=4, head="reference")
    head = net.head
    # branch 1 (1/16) downsamples at cell 9, branch 2 (1/32) at cells 5 and 11: their last 1/8 and 1/16
    # features are the inputs of those cells (the reference's ch_8_1, ch_16, ch_8_2)
    assert head.inner_keys == [(1, 8), (2, 16), (2, 8)]
    assert [layer for layer, _ in head.taps] == [8, 10, 4]
    # FFM16 fuses the 1/16 branch output (64 ch at F=4) and the 1/32 branch's last 1/16 feature (64 ch)
    assert head.ffm16.conv.conv.in_channels == 128 and head.ffm32.conv.conv.in_channels == 128


def test_head_attention_runs_at_half_resolution() -> None:
    op = SelfAttentionReference(256, 256, half_resolution=True)
    assert count_params(op) == count_params(SelfAttentionReference(256, 256))
    assert attention_macs(op, [1, 256, 32, 64]) == 512 * 512 * (32 + 256)  # 16x32 tokens
    assert op(torch.randn(1, 256, 9, 11)).shape == (1, 256, 9, 11)
    with pytest.raises(ValueError, match="stride-1"):
        SelfAttentionReference(256, 256, 2, half_resolution=True)
    assert isinstance(build_network("pkg://hyctas_s", 3, filter_multiplier=2, head="reference").head.semantic.block,
                      LightweightConv2x)


def test_unknown_head_is_refused() -> None:
    with pytest.raises(ValueError, match="head must be one of"):
        build_network("pkg://hyctas_s", 3, filter_multiplier=2, head="bogus")


def test_model_head_reaches_profile_and_retrain() -> None:
    cfg = compose_config(["stage=profile", "arch=hyctas_s", "model.head=reference"])
    assert cfg.model.head == "reference" and cfg.model.genotype == "pkg://hyctas_s"
    retrain = compose_config(["stage=retrain", "arch=hyctas_m", "model.head=reference"])
    assert net_config(retrain.stage)["head"] == "reference"
    assert "head" not in net_config(compose_config(["stage=retrain", "arch=hyctas_m"]).stage)


@pytest.mark.slow  # 4-14 s (make test-slow keeps make test under 6 min with the shared data)
def test_table2_transformer_at_the_paper_width_and_the_explained_sa_row() -> None:
    rows = profile_ops([], ["self_attention_reference"], [1, 256, 32, 64], 2, torch.device("cpu"),
                       paper_transformer={"patch": 2, "num_heads": 8, "mlp_ratio": 4.0})
    paper = rows[PAPER_TRANSFORMER]
    assert paper["params_m"] == pytest.approx(12.5962, abs=1e-4)  # paper: 12.62
    assert paper["macs_g_no_mhsa"] == pytest.approx(4.300, abs=1e-3)  # paper: 4.3 (thop: no MHSA rule)
    assert paper["macs_g"] == pytest.approx(6.985, abs=1e-3)
    mesa = rows["self_attention_reference/s2"]
    assert (round(mesa["params_m"], 2), round(mesa["macs_g_no_attn"], 1)) == (0.81, 0.6)  # the paper's row
    assert "MESA" in mesa["note"] and "width" in paper["note"]
