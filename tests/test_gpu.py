"""GPU checks (`pytest -m gpu`, run by `make bench-gpu` after the benchmark); skipped without CUDA."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from segnas.metrics import measure_latency
from segnas.models import build_network
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
    space = get_space("hyctas", layers=8, ops=KNOWN_OPS, filter_multiplier=4)
    torch.manual_seed(0)
    supernet = HyCTASSupernet.from_space(space, num_classes=19).cuda().eval()
    x = torch.randn(2, 3, 128, 256, device="cuda")
    rng = np.random.default_rng(0)
    for _ in range(4):
        genotype = space.sample(rng)
        with torch.no_grad():
            expected = supernet(x, genotype)
            torch.testing.assert_close(supernet.extract(genotype).eval()(x), expected, atol=1e-4, rtol=1e-4)
        assert expected.shape == (2, 19, 128, 256)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize(("name", "fm", "os"), [("hyctas_s", 12, 8), ("hyctas_l", 16, 4)])
def test_autocast_forward_is_finite(name: str, fm: int, os: int, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    net = build_network(f"pkg://{name}", num_classes=19, filter_multiplier=fm, output_stride=os).cuda().eval()
    with torch.inference_mode(), torch.autocast("cuda", dtype=dtype):
        out = net(torch.randn(1, 3, 256, 512, device="cuda"))
    assert out.shape == (1, 19, 256, 512)
    assert torch.isfinite(out).all()


def test_measure_latency_on_cuda() -> None:
    net = build_network("pkg://hyctas_s", num_classes=19, filter_multiplier=12, output_stride=8)
    result = measure_latency(net, (1, 3, 256, 512), "cuda", warmup=2, duration_s=0.2)
    assert result.device == torch.cuda.get_device_name() and math.isfinite(result.fps) and result.fps > 0
    assert next(net.parameters()).device.type == "cpu"  # restored
