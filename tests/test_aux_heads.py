"""HyCTAS aux heads as in the reference (``use_aux``): one at stride 16 and one at stride 32 for S, M and L."""

import pytest
import torch

from segnas.lit.inference import load_checkpoint
from segnas.models import build_network, deploy_net
from segnas.spaces.hyctas import Branch, HyCTASGenotype, HyCTASNet, HyCTASWithAux
from segnas.spaces.hyctas.network import last_node_at
from segnas.stages import run_stage

from conftest import compose_config


def aux_net(genotype: str | HyCTASGenotype) -> HyCTASWithAux:
    torch.manual_seed(0)
    net = build_network(genotype, 3, filter_multiplier=2, aux_heads=True)
    assert isinstance(net, HyCTASWithAux)
    return net


def head_input_sizes(net: HyCTASWithAux, x: torch.Tensor) -> list[tuple[int, ...]]:
    """Spatial sizes of the features the aux heads see in a training forward pass."""
    sizes: list[tuple[int, ...]] = []
    hooks = [
        h.register_forward_hook(lambda m, i, o: sizes.append(tuple(i[0].shape[-2:])))
        for h in [*net.aux_taps, *net.aux]
    ]
    net.train()(x)
    for h in hooks:
        h.remove()
    return sizes


@pytest.mark.parametrize("arch", ["hyctas_s", "hyctas_m", "hyctas_l"])
def test_released_nets_get_aux_heads_at_strides_16_and_32(arch):
    net = aux_net(f"pkg://{arch}")
    x = torch.randn(2, 3, 64, 64)
    assert net.aux_strides == [16, 32]
    assert head_input_sizes(net, x) == [(4, 4), (2, 2)]
    logits, aux = net.train()(x)
    assert logits.shape == (2, 3, 64, 64) and [a.shape for a in aux] == [logits.shape] * 2
    # eval: the main logits only, equal to the plain network with the same weights
    plain = build_network(f"pkg://{arch}", 3, filter_multiplier=2)
    assert isinstance(plain, HyCTASNet)
    plain.load_state_dict(net.net.state_dict())
    with torch.no_grad():
        out = net.eval()(x)
        assert torch.equal(out, plain.eval()(x)) and torch.equal(out, deploy_net(net)(x))
    assert deploy_net(net) is net.net


@pytest.mark.parametrize(("arch", "layer"), [("hyctas_s", 2), ("hyctas_m", 14)])
def test_single_branch_stride16_head_sees_the_input_of_the_last_downsampling(arch, layer):
    """The reference's FFM16 input for a 1/32 branch: its last 1/16 feature (input of the 1/16->1/32 cell)."""
    net = aux_net(f"pkg://{arch}").train()
    assert net.taps == [(layer, 0)] and net.aux_index == [0]
    seen = []
    down = net.net.cells[layer + 1][0]
    hook = down.register_forward_hook(lambda m, i, o: seen.append(i[0]))
    x = torch.randn(2, 3, 64, 64)
    _, _, tapped = net.net.features(x, net.taps)
    hook.remove()
    assert net.net.plan.layers[layer + 1][0].down and torch.equal(tapped[0], seen[0])


def genotype(*downs: list[int]) -> HyCTASGenotype:
    depth = len(downs[0])
    return HyCTASGenotype(tuple(Branch(["conv"] * depth, [1.0] * depth, d) for d in downs), (0,) * (depth - 1))


@pytest.mark.parametrize(
    ("downs", "strides", "tapped"),
    [
        ([[0, 0, 0, 0]], [], False),  # only stride 8: no feature at 1/16 or 1/32, no aux head
        ([[0, 1, 0, 0]], [16], False),  # a branch ending at 1/16: its output
        ([[0, 0, 0, 0], [0, 1, 0, 0]], [16], False),
        ([[0, 0, 0, 0], [1, 0, 1, 0]], [16, 32], True),  # 1/32 branch: its inner 1/16 feature too
    ],
)
def test_aux_heads_of_every_head_combination(downs, strides, tapped):
    net = aux_net(genotype(*downs))
    assert net.aux_strides == strides and bool(net.taps) == tapped
    logits, aux = net.train()(torch.randn(2, 3, 64, 64))
    assert len(aux) == len(strides) and all(a.shape == logits.shape for a in aux)
    assert head_input_sizes(net, torch.randn(2, 3, 64, 64)) == [(64 // s, 64 // s) for s in strides]


def test_last_node_at_is_none_when_the_branch_never_runs_at_the_stride():
    plan = aux_net(genotype([0, 0, 0, 0])).net.plan
    assert last_node_at(plan, 0, 16) is None and last_node_at(plan, 0, 8) == (3, 0)


def test_checkpoint_without_the_tapped_head_still_loads():
    net = aux_net("pkg://hyctas_s")
    old = {k: v for k, v in net.state_dict().items() if not k.startswith("aux_taps.")}
    fresh = aux_net("pkg://hyctas_s")
    fresh.load_state_dict(old)  # written before the stride-16 head existed
    assert torch.equal(fresh.aux[0].classifier.weight, net.aux[0].classifier.weight)
    with pytest.raises(RuntimeError, match=r"aux\.0\.classifier\.weight"):
        fresh.load_state_dict({k: v for k, v in old.items() if k != "aux.0.classifier.weight"})


def test_retrain_of_a_single_branch_net_logs_both_aux_losses(tmp_path):
    overrides = [
        "stage=retrain",
        "arch=hyctas_m",
        "debug=tiny",  # arch= selects model=hyctas (not TINY_TRAIN's DeepLab)
        "stage.filter_multiplier=2",
        "optim.top_k_percent=0.5",
        "trainer.limit_train_batches=1",
    ]
    results = run_stage(compose_config(overrides, tmp_path))
    history = (tmp_path / "csv" / "metrics.csv").read_text()
    assert "train/loss_aux0_step" in history and "train/loss_aux1_step" in history
    module = load_checkpoint(results["last_ckpt"])
    assert isinstance(module.net, HyCTASWithAux) and module.net.aux_strides == [16, 32]
