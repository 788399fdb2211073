"""segnas.models.build_network: one factory for every space, and one genotype hand-off to the stages."""

import shutil

import numpy as np
import pytest
import torch
import yaml

from segnas.lit.inference import load_checkpoint
from segnas.models import build_network, deploy_net, inline_genotype
from segnas.spaces import FasterSegSpace, as_genotype, load_genotype, network_options, save_genotype
from segnas.spaces.fasterseg import FasterSegNet, FasterSegWithAux
from segnas.spaces.hyctas import HyCTASNet, HyCTASWithAux
from segnas.stages import run_stage

from conftest import TINY_TRAIN, compose_config

PACKAGED = {"hyctas": "hyctas_s", "fasterseg": "fasterseg"}
OPTIONS = {"hyctas": {"filter_multiplier": 2}, "fasterseg": {}}
NETS = {"hyctas": HyCTASNet, "fasterseg": FasterSegNet}
WRAPPERS = {"hyctas": HyCTASWithAux, "fasterseg": FasterSegWithAux}
MODELS = {
    "hyctas": ["model=hyctas", "arch=hyctas_s", "model.filter_multiplier=4"],
    "fasterseg": ["model=fasterseg"],
}
TINY_RETRAIN = [
    *TINY_TRAIN,
    "stage.filter_multiplier=4",
    "optim.top_k_percent=0.5",
]
COMMAND = "python -m segnas stage=retrain stage.genotype=rank_00.yaml"


def searched(space: str):
    """A genotype as a search writes it: HyCTAS-S, or a FasterSeg sample."""
    if space == "hyctas":
        return load_genotype("pkg://hyctas_s")
    return FasterSegSpace().sample(np.random.default_rng(0))


@pytest.mark.parametrize("space", ["hyctas", "fasterseg"])
def test_build_network_from_genotype_dict_yaml_and_pkg(space, tmp_path):
    genotype = load_genotype(f"pkg://{PACKAGED[space]}")
    path = save_genotype(genotype, tmp_path / "arch.yaml", metrics={"mIoU": 70.0}, command=COMMAND)
    forms = [genotype, genotype.to_dict(), path, str(path), f"pkg://{PACKAGED[space]}"]
    for form in forms:
        net = build_network(form, 3, **OPTIONS[space])
        assert type(net) is NETS[space] and net.genotype == genotype
    assert net.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 3, 64, 64)


@pytest.mark.parametrize("space", ["hyctas", "fasterseg"])
def test_aux_heads_train_only_and_deploy_without_them(space):
    torch.manual_seed(0)
    net = build_network(f"pkg://{PACKAGED[space]}", 3, aux_heads=True, **OPTIONS[space])
    assert isinstance(net, WRAPPERS[space])
    x = torch.randn(2, 3, 64, 64)
    logits, aux = net.train()(x)
    assert logits.shape == (2, 3, 64, 64) and len(aux) == 2 and all(a.shape == logits.shape for a in aux)
    deployed = deploy_net(net)
    assert type(deployed) is NETS[space]
    assert torch.equal(net.eval()(x), deployed(x))
    assert sum(p.numel() for p in deployed.parameters()) < sum(p.numel() for p in net.parameters())


def test_unknown_option_and_unknown_space_are_named():
    assert network_options("fasterseg") == ["aux_heads", "init"]
    assert network_options("hyctas") == ["filter_multiplier", "output_stride", "drop_path_rate", "aux_heads", "head"]
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['filter_multiplier'\] for a fasterseg"):
        build_network("pkg://fasterseg", 3, filter_multiplier=4)
    with pytest.raises(TypeError, match="drop_path"):
        build_network("pkg://hyctas_s", 3, drop_path=0.1)
    with pytest.raises(ValueError, match="space None"):
        build_network({"branches": []}, 3)
    with pytest.raises(ValueError, match="expected a hyctas genotype"):
        as_genotype("pkg://fasterseg", "hyctas")


def test_genotype_yaml_carries_metrics_and_retrain_command(tmp_path):
    genotype = searched("fasterseg")
    path = save_genotype(genotype, tmp_path / "a.yaml", metrics={"score": np.float32(1.5)}, command=COMMAND)
    data = yaml.safe_load(path.read_text())
    assert data["space"] == "fasterseg"
    assert data["metrics"] == {"score": 1.5} and data["retrain_command"] == COMMAND
    assert load_genotype(path) == genotype == as_genotype(data)
    plain = yaml.safe_load(save_genotype(genotype, tmp_path / "b.yaml").read_text())
    assert plain == genotype.to_dict()


def test_inline_genotype_replaces_paths_by_contents():
    config = {"_target_": "segnas.models.build_network", "genotype": "pkg://hyctas_s", "output_stride": 8}
    inlined = inline_genotype(config)
    assert inlined == {**config, "genotype": load_genotype("pkg://hyctas_s").to_dict()}
    assert inline_genotype(inlined) == inlined
    assert inline_genotype({"_target_": "segnas.models.deeplab.DeepLabV3Plus"}) == {
        "_target_": "segnas.models.deeplab.DeepLabV3Plus"
    }


@pytest.fixture(scope="module", params=["hyctas", "fasterseg"])
def retrained(request, tmp_path_factory):
    """``stage=retrain stage.genotype=PATH`` on a searched genotype YAML, which is deleted afterwards."""
    space = request.param
    tmp = tmp_path_factory.mktemp(f"retrain_{space}")
    genotype = searched(space)
    path = save_genotype(
        genotype, tmp / "genotypes" / "rank_00.yaml", metrics={"score": 1.0}, command=COMMAND
    )
    out = tmp / "run"
    results = run_stage(compose_config(["stage=retrain", f"stage.genotype={path}", *TINY_RETRAIN], out))
    shutil.rmtree(path.parent)  # the checkpoint must not need the file
    return space, genotype, out, results


def test_retrain_accepts_a_genotype_yaml_of_either_space(retrained):
    space, genotype, out, results = retrained
    assert results["space"] == space and 0.0 <= results["val/mIoU"] <= 100.0  # a range: 4 steps, at chance
    module = load_checkpoint(results["last_ckpt"])
    assert module.hparams.net_config["genotype"] == genotype.to_dict()
    assert isinstance(module.net, WRAPPERS[space])
    history = (out / "csv" / "metrics.csv").read_text()
    assert "train/loss_aux0_step" in history
    assert ("train/drop_path_rate" in history) == (space == "hyctas")  # FasterSeg has no drop path
    deployed = sum(p.numel() for p in deploy_net(module.net).parameters())
    assert results["params_m"] == pytest.approx(deployed / 1e6)


def test_evaluate_a_retrained_checkpoint_of_either_space(retrained, tmp_path):
    _, _, _, results = retrained
    cfg = compose_config(
        ["stage=evaluate", *TINY_TRAIN, f"ckpt_path={results['last_ckpt']}"],
        tmp_path,
    )
    evaluated = run_stage(cfg)
    assert evaluated["params_m"] == pytest.approx(results["params_m"])  # aux heads excluded
    assert evaluated["macs_g"] == pytest.approx(results["macs_g"])


@pytest.mark.parametrize("space", ["hyctas", "fasterseg"])
def test_train_model_genotype_path_stores_the_genotype_contents(space, tmp_path):
    genotype = searched(space)
    path = save_genotype(genotype, tmp_path / "genotypes" / "rank_00.yaml")
    cfg = compose_config(
        ["stage=train", *MODELS[space], f"model.genotype={path}", "debug=tiny"],
        tmp_path / "run",
    )
    results = run_stage(cfg)
    shutil.rmtree(path.parent)
    module = load_checkpoint(results["last_ckpt"])
    assert module.hparams.net_config["genotype"] == genotype.to_dict()
    assert module.hparams.net_config["_target_"] == "segnas.models.build_network"
    assert type(module.net) is NETS[space]
