"""benchmarks/gpu.py (`make bench-gpu`): its quick CPU mode fills every section (seconds); without CUDA it exits 0;\nits GPU-only logic (CUDA-graph wrapper, memory readings, torch.compile) checked on the CPU."""

from __future__ import annotations

import contextlib
import importlib.util
import math
import re
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn
from torch._ops import OpOverload
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from segnas.search.objectives import bn_recalibrate

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.py"


@pytest.fixture(scope="module")
def gpu():
    """benchmarks/gpu.py as a module (registered first: its dataclasses look their module up)."""
    spec = importlib.util.spec_from_file_location("bench_gpu", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_gpu"] = module
    spec.loader.exec_module(module)
    yield module
    del sys.modules["bench_gpu"]


def tables(text: str) -> dict[str, list[dict[str, str]]]:
    """Section name -> rows of its Markdown table."""
    out = {}
    for name, body in re.findall(r"^## (\w+)\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S):
        lines = [ln for ln in body.splitlines() if ln.startswith("| ")]
        cols = [c.strip() for c in lines[0].strip("|").split("|")] if lines else []
        out[name] = [dict(zip(cols, (c.strip() for c in ln.strip("|").split("|")), strict=True)) for ln in lines[1:]]
    return out


@pytest.mark.parametrize("compile_column", [False, pytest.param(True, marks=pytest.mark.slow)],
                         ids=["no_compile", "compile"])  # torch.compile of HyCTAS-S traces for ~10 s
def test_quick_cpu_run_fills_every_section(gpu, tmp_path: Path, compile_column: bool) -> None:
    cfg = gpu.QUICK if compile_column else replace(gpu.QUICK, compile_min_s=math.inf)
    path = gpu.run(cfg, torch.device("cpu"), tmp_path, ["--device", "cpu", "--quick"])
    text = path.read_text()
    assert "Status: complete" in text and "torch " in text
    found = tables(text)
    assert list(found) == [s.__name__ for s in gpu.SECTIONS]
    for name, rows in found.items():
        assert rows, f"section {name} has no row"
        assert all("error" not in r for r in rows), f"section {name} failed: {rows}"
        skipped = [k for r in rows for k, v in r.items() if "skipped" in v and k != gpu.COMPILED]
        assert not skipped, f"section {name} skipped {skipped}: {rows}"
    fps = found["fps"]
    assert [r["model"] for r in fps] == list(gpu.QUICK.fps_models)
    for row in fps:  # CUDA graphs need CUDA (their logic: test_graphed_*); every other variant ran
        assert row["fp16 CUDA graph"] == "failed: RuntimeError: CUDA graphs need a CUDA device"
        for variant in (v.name for v in gpu.VARIANTS if not v.graph):
            assert re.fullmatch(r"[\d.]+", row[variant]), (variant, row[variant])
        compiled = r"[\d.]+ \(compile \d+ s\)" if compile_column else r"skipped \(time budget\)"
        assert re.fullmatch(compiled, row[gpu.COMPILED]), row[gpu.COMPILED]
    assert [r["operator"] for r in found["attention_ops"]] == list(gpu.ATTENTION_OPS)
    assert all(float(r["fp16 error"]) < 0.05 for r in found["attention_ops"])  # finite and close to fp32
    assert len(found["memory_check"]) == gpu.QUICK.memory_networks + 1
    assert [r["branches"] for r in found["candidate_evaluation"]] == ["1", "2", "3", "all"]
    assert found["proxies"][0]["invalid"] == "none"
    assert float(found["latency_table"][0]["networks"]) == gpu.QUICK.lut_networks
    assert re.fullmatch(r"\d+", found["latency_table"][0]["within 10 %"])


def test_without_cuda_it_exits_0_and_writes_nothing(gpu, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(gpu, "RESULTS", tmp_path / "results")
    assert gpu.main([]) == 0
    assert gpu.NO_GPU in capsys.readouterr().out
    assert not (tmp_path / "results").exists()


# ---------------------------------------------------------------- CUDA graphs: a CPU stand-in for torch.cuda
HOST_SYNCS = {"aten::item", "aten::_local_scalar_dense", "aten::nonzero", "aten::masked_select", "aten::equal", "aten::is_nonzero",
              "aten::_unique2", "aten::unique_dim", "aten::unique_consecutive", "aten::lift_fresh"}


class RecordingGraph(TorchDispatchMode):
    """CPU stand-in for ``torch.cuda.CUDAGraph``: records the aten ops run while capturing; ``replay`` reruns
    them on the recorded tensors, writing each result into the recorded output (a CUDA graph replays its
    kernels on fixed memory: what the forward reads from Python, or any new tensor it returns, is stale)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: list[tuple[OpOverload, tuple, dict, object]] = []

    def __torch_dispatch__(self, func: OpOverload, types: tuple, args: tuple = (), kwargs: dict | None = None):
        out = func(*args, **(kwargs or {}))
        self.ops.append((func, args, kwargs or {}, out))
        return out

    def host_syncs(self) -> list[str]:
        """Ops that read a device value on the host, or copy host data in: illegal inside CUDA graph capture."""
        return [f.name() for f, _, _, out in self.ops if f.name() in HOST_SYNCS or isinstance(out, bool | int | float)]

    def replay(self) -> None:
        for func, args, kwargs, out in self.ops:
            fresh = func(*args, **kwargs)
            for old, new in zip(tree_leaves(out), tree_leaves(fresh), strict=True):
                if isinstance(old, Tensor) and old is not new:
                    old.copy_(new)


class CpuCuda:
    """The ``torch.cuda`` API ``_Graphed`` uses, on the CPU: no-op streams, recording graphs."""

    class Stream:
        def wait_stream(self, other: object) -> None:
            pass

    CUDAGraph = RecordingGraph

    def __init__(self) -> None:
        self.graphs: list[RecordingGraph] = []

    def current_stream(self) -> CpuCuda.Stream:
        return self.Stream()

    def stream(self, stream: CpuCuda.Stream) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def graph(self, graph: RecordingGraph) -> RecordingGraph:
        self.graphs.append(graph)
        return graph


class Counted(nn.Module):
    """``net`` counting its Python forward calls."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net, self.calls = net, 0

    def forward(self, x: Tensor) -> Tensor:
        self.calls += 1
        return self.net(x)


def test_graphed_warms_up_captures_once_then_replays_without_python(gpu) -> None:
    torch.manual_seed(0)
    net = Counted(nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU()).eval())
    cuda = CpuCuda()
    graphed = gpu._Graphed(net, cuda=cuda)
    with torch.inference_mode():
        inputs = [torch.randn(1, 3, 8, 8) for _ in range(4)]
        outputs = [graphed(x) for x in inputs]
        assert net.calls == 4 and len(cuda.graphs) == 1  # 3 warm-up calls, 1 capture, then replays only
        assert all(out is outputs[0] for out in outputs)  # the static output, overwritten by every call
        assert torch.equal(outputs[-1], net.net(inputs[-1]))
        assert not torch.equal(net.net(inputs[0]), outputs[-1])


def test_the_stand_in_catches_a_forward_that_breaks_capture(gpu) -> None:
    """A forward reading a value on the host: flagged, and its replay is stale (what a CUDA graph would do)."""

    class HostRead(nn.Module):
        def forward(self, x: Tensor) -> Tensor:
            return x / x.abs().max().item()

    graphed = gpu._Graphed(HostRead(), cuda=(cuda := CpuCuda()))
    with torch.inference_mode():
        graphed(torch.ones(2))
        out = graphed(torch.full((2,), 4.0))
    assert cuda.graphs[0].host_syncs()
    assert torch.equal(out, torch.full((2,), 4.0))  # the baked 1 / max of the captured input, not 1.0


@pytest.mark.parametrize("label", ["HyCTAS-S", "FasterSeg"])
def test_fps_networks_keep_the_cuda_graph_contract(gpu, label: str) -> None:
    """The callable the fps table captures (fp16 autocast, weight-cast cache off, eval, inference mode): no
    host sync while capturing, and replays on new inputs equal its eager forward. BatchNorm statistics are
    estimated first: at initialisation HyCTAS-S's eval-mode output does not depend on its input."""
    torch.manual_seed(0)
    net = gpu._fps_models()[label][1]()
    bn_recalibrate(net, [torch.randn(8, 3, 32, 64)])
    model = gpu._Autocast(net.eval(), torch.float16, cache=False)
    graphed = gpu._Graphed(model, cuda=(cuda := CpuCuda()))
    with torch.inference_mode():
        first = graphed(torch.randn(1, 3, 32, 64)).clone()
        for _ in range(2):
            x = torch.randn(1, 3, 32, 64)
            out = graphed(x)
            assert torch.equal(out, model(x)) and not torch.equal(out, first)
    assert cuda.graphs[0].host_syncs() == []


# ------------------------------------------------------------------- memory readings, injected
class Readings:
    """``torch.cuda``'s memory statistics, scripted: ``allocated`` is read in turn, ``peak`` once reset."""

    def __init__(self, allocated: list[int], peak: int) -> None:
        self.allocated, self.peak, self.events = list(allocated), peak, []

    def synchronize(self, device: torch.device) -> None:
        self.events.append("sync")

    def memory_allocated(self, device: torch.device) -> int:
        self.events.append("allocated")
        return self.allocated.pop(0)

    def reset_peak_memory_stats(self, device: torch.device) -> None:
        self.events.append("reset")

    def max_memory_allocated(self, device: torch.device) -> int:
        assert "reset" in self.events
        self.events.append("peak")
        return self.peak


def test_training_memory_subtracts_the_base_and_reads_kept_before_the_backward(gpu) -> None:
    net = nn.Conv2d(3, 2, 1)
    backward_seen = []
    net.weight.register_hook(lambda grad: backward_seen.append(len(stats.events)))
    stats = Readings(allocated=[100 * 2**20, 164 * 2**20], peak=612 * 2**20)
    kept, peak = gpu._training_memory(net, torch.randn(1, 3, 4, 4), torch.zeros(1, 4, 4, dtype=torch.long),
                                      torch.device("cpu"), cuda=stats)
    assert (kept, peak) == (64.0, 512.0)
    assert stats.events == ["sync", "allocated", "reset", "allocated", "sync", "peak"]
    assert backward_seen == [4]  # the backward ran after the kept reading
    assert net.weight.grad is None  # gradients freed


def test_peak_mb_is_the_peak_above_the_base_and_none_off_cuda(gpu) -> None:
    stats = Readings(allocated=[10 * 2**20], peak=42 * 2**20)
    assert gpu._peak_mb(lambda: None, torch.device("cuda"), cuda=stats) == 32.0
    assert gpu._peak_mb(lambda: None, torch.device("cpu"), cuda=stats) is None


def test_memory_check_errors_from_injected_readings(gpu, monkeypatch) -> None:
    kept = iter([(50.0, 80.0), (40.0, 90.0), (200.0, 300.0), (250.0, 400.0)])  # default, math per network
    estimates: list[float] = []

    def inject(genotype, space, cfg, device, seed) -> dict[str, tuple[float, float]]:
        estimates.append(gpu.activation_memory_mb(genotype, space.filter_multiplier, *cfg.memory_input))
        return {"default": next(kept), "math": next(kept)}

    monkeypatch.setattr(gpu, "_kept_and_peak", inject)
    rows: list[dict] = []
    gpu.memory_check(replace(gpu.QUICK, memory_networks=2), torch.device("cuda"), gpu.Budget(math.inf), rows.append)
    readings = [(50.0, 40.0), (200.0, 250.0)]
    for row, estimate, (default, math_kernel) in zip(rows[:2], estimates, readings, strict=True):
        assert row["kept MB (default attention)"] == f"{default:.1f}"
        assert row["error (default)"] == f"{100 * (estimate / default - 1):+.1f} %"
        assert row["error (math)"] == f"{100 * (estimate / math_kernel - 1):+.1f} %"
    assert rows[0]["peak MB (default)"] == "80.0" and rows[1]["peak MB (math)"] == "400.0"
    errors = [abs(e / k - 1) for e, (k, _) in zip(estimates, readings, strict=True)]
    assert rows[2]["error (default)"] == f"{100 * np.median(errors):.1f} % / {100 * max(errors):.1f} %"


# ------------------------------------------------------------------------------------ torch.compile
def test_compiled_fps_compiles_the_network_in_eval_mode(gpu) -> None:
    """A network whose training-mode forward cannot run at batch 1 (BatchNorm over a 1x1 map) compiles."""
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.BatchNorm2d(4)).train()
    cfg = replace(gpu.QUICK, fps_hw=(8, 8), fps_seconds=0.0)
    try:
        assert re.fullmatch(r"[\d.]+ \(compile \d+ s\)", gpu._compiled_fps(net, cfg, torch.device("cpu")))
    finally:
        torch.compiler.reset()
