"""Every searched genotype exports to ONNX: networks sampled from each registered space, checked with
onnxruntime against PyTorch."""

import numpy as np
import pytest
import torch

from segnas.models import build_network
from segnas.spaces import SPACES, get_space
from segnas.stages.export import export_onnx, onnx_logits

pytest.importorskip("onnxruntime")

# Small networks: HyCTAS at filter multiplier 2 over 4 layers, FasterSeg at depth 6 at most.
SMALL = {"hyctas": ({"layers": 4}, {"filter_multiplier": 2}), "fasterseg": ({"max_depth": 6}, {})}


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")
@pytest.mark.parametrize("space_name", [pytest.param(name, marks=pytest.mark.slow) if name.startswith("transnas")
                                        else name for name in sorted(SPACES)])  # TNB nets export in 3-4 s each
def test_sampled_genotypes_of_every_space_export_to_onnx(space_name, tmp_path):
    """Multi-branch HyCTAS genotypes included: their fusion edges pool to sizes that need not divide the
    input's (a 40x56 image: 5x7 at stride 8, 3x4 at 16, 2x2 at 32)."""
    space_options, net_options = SMALL.get(space_name, ({}, {}))
    space, rng = get_space(space_name, **space_options), np.random.default_rng(0)
    genotypes = [space.sample(rng) for _ in range(8)]
    if space_name == "hyctas":  # three branches (every fusion edge) and two
        by_branches = {g.num_branches: g for g in genotypes}
        genotypes = [by_branches[3], by_branches[2]]
    image, other = torch.randn(1, 3, 40, 56), torch.randn(2, 3, 48, 64)
    for i, genotype in enumerate(genotypes[:2]):
        torch.manual_seed(0)
        net = build_network(genotype, 3, **net_options).eval()
        dynamic = i == 0  # exported with dynamic shapes, then run at another batch size and resolution
        path = export_onnx(net, image, tmp_path / f"{i}.onnx", dynamic=dynamic)
        with torch.no_grad():
            for x in (image, other) if dynamic else (image,):
                np.testing.assert_allclose(onnx_logits(path, x), net(x).numpy(), atol=1e-4, rtol=1e-4)
