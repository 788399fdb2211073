"""Proxy-file scoring in searches (:class:`ProxyFileScore`) equals the proxy file's own definition
(``ProxyFile.score`` on the built network) on TransNAS-Bench-101 networks, and the disposable statistics pass
equals the pass on a copy."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from segnas.proxies import compute
from segnas.proxies.proxy_file import load_proxy_file
from segnas.search.evaluator import InvalidScore
from segnas.search.scoring import proxy_file_objective
from segnas.spaces import transnas
from segnas.spaces.transnas import TransNASMacroGenotype, TransNASMicroGenotype

ROOT = Path(__file__).resolve().parents[1]
BEST_PROXY = ROOT / "experiments" / "saswot_proxy_evolution" / "best_proxy.yaml"
# small nets of both spaces (seconds each); 0_00_001 has a constant input-Jacobian: jacov, the score, undefined
ARCHS = ("64-41414-2_02_020", "64-41414-1_13_210", "64-41414-0_00_001", "64-1312-basic", "64-4111-basic")


def _genotype(arch: str) -> TransNASMicroGenotype | TransNASMacroGenotype:
    return TransNASMacroGenotype(arch) if arch.endswith("-basic") else TransNASMicroGenotype(arch)


@pytest.mark.slow  # ~8 s idle: make test-slow (keeps make test under 6 minutes)
def test_proxy_file_score_equals_the_definition() -> None:
    """best_proxy.yaml by the search's objective vs building the network and calling ``ProxyFile.score``
    (a copy for the pass, every gradient, flops traced by fvcore): equal to 1e-6, NaN alike."""
    pf = load_proxy_file(BEST_PROXY)
    objective = proxy_file_objective(pf, {})
    for arch in ARCHS:
        genotype = _genotype(arch)
        torch.manual_seed(pf.protocol.seed)
        reference = pf.score(objective.build(genotype), objective.inputs, objective.targets)
        if math.isnan(reference):
            with pytest.raises(InvalidScore):
                objective(genotype)
            continue
        assert objective(genotype) == pytest.approx(reference, abs=1e-6, rel=0), arch
        assert objective.known(genotype)["flops"] == compute(["flops"], transnas.build(arch), objective.inputs,
                                                             objective.targets)["flops"]


@pytest.mark.slow  # ~5 s idle
def test_disposable_pass_equals_the_pass_on_a_copy() -> None:
    """Every shared-pass proxy (and the model-reading ones beside them) gives the same value when the pass runs
    on the network itself with only the scored weights' gradients."""
    names = ["params", "l2_norm", "synflow", "grad_norm", "snip", "plain", "fisher", "nwot", "jacov",
             "saswot_minus"]
    x, y = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(1)), torch.randint(0, 17, (4, 64, 64))
    for arch in ("64-41414-3_12_031", "64-2311-basic"):
        copied = compute(names, transnas.build(arch, seed=0), x, y)
        disposable = compute(names, transnas.build(arch, seed=0), x, y, disposable=True)
        assert disposable == copied, arch
