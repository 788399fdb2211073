"""GPU checks (`pytest -m gpu`, run by `make bench-gpu` after the benchmark); skipped without CUDA."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from segnas.metrics import measure_latency
from segnas.models import build_network
from segnas.search.objectives import bn_recalibrate
from segnas.spaces import get_space
from segnas.spaces.hyctas import KNOWN_OPS
from segnas.spaces.hyctas.supernet import HyCTASSupernet

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.fixture
def exact_fp32() -> Iterator[None]:
    """TF32 off (cuDNN convolutions use it by default), so fp32 results can be compared at 1e-4."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def test_supernet_slice_equals_standalone_on_cuda(exact_fp32: None) -> None:
    """In training mode (batch statistics): at initialisation, eval-mode outputs hardly depend on the input."""
    space = get_space("hyctas", layers=8, ops=KNOWN_OPS, filter_multiplier=4)
    torch.manual_seed(0)
    supernet = HyCTASSupernet.from_space(space, num_classes=19).cuda().train()
    x = torch.randn(2, 3, 128, 256, device="cuda")
    rng = np.random.default_rng(0)
    for _ in range(4):
        genotype = space.sample(rng)
        with torch.no_grad():
            expected = supernet(x, genotype)
            torch.testing.assert_close(supernet.extract(genotype).train()(x), expected, atol=1e-4, rtol=1e-4)
        assert expected.shape == (2, 19, 128, 256)
        assert (expected[0] - expected[1]).abs().max() > 1e-2  # the output depends on the image


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize(("name", "fm", "os"), [("hyctas_s", 12, 8), ("hyctas_l", 16, 4)])
def test_autocast_forward_is_finite(name: str, fm: int, os: int, dtype: torch.dtype) -> None:
    """At the released sizes, BatchNorm statistics estimated first: at initialisation the eval-mode activations
    shrink layer by layer, so any forward would be finite (closeness to fp32: tests/test_precision.py)."""
    torch.manual_seed(0)
    net = build_network(f"pkg://{name}", num_classes=19, filter_multiplier=fm, output_stride=os).cuda()
    bn_recalibrate(net, [torch.randn(4, 3, 256, 512, device="cuda")])
    with torch.inference_mode(), torch.autocast("cuda", dtype=dtype):
        out = net.eval()(torch.randn(1, 3, 256, 512, device="cuda"))
    assert out.shape == (1, 19, 256, 512)
    assert torch.isfinite(out).all() and out.float().std() > 1e-2


def test_measure_latency_on_cuda() -> None:
    """Every pass (warm-up and timed) ran on the GPU, whose name the result reports; the model is put back."""
    net = build_network("pkg://hyctas_s", num_classes=19, filter_multiplier=12, output_stride=8)
    ran_on: list[tuple[torch.device, torch.device]] = []
    net.register_forward_pre_hook(lambda m, args: ran_on.append((args[0].device, next(m.parameters()).device)))
    result = measure_latency(net, (1, 3, 256, 512), "cuda", warmup=2, duration_s=0.2)
    gpu = torch.device("cuda", torch.cuda.current_device())
    assert len(ran_on) == 2 + result.n_iters and set(ran_on) == {(gpu, gpu)}
    assert result.device == torch.cuda.get_device_properties(gpu).name and result.device != "cpu"
    assert result.median_ms > 0 and math.isclose(result.fps, 1000 / result.median_ms)
    assert next(net.parameters()).device.type == "cpu"  # restored
