"""``stage=export``: TorchScript and ONNX files of a trained segmentation network, checked against PyTorch."""

from __future__ import annotations

import importlib.util
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from torch import nn

from segnas.lit.inference import load_checkpoint
from segnas.models import deploy_net
from segnas.utils.run import output_dir

log = logging.getLogger(__name__)
FORMATS = ("torchscript", "onnx")


@contextmanager
def quiet_jit() -> Iterator[None]:
    """Without torch's FutureWarnings that TorchScript is deprecated: a TorchScript file is what is asked for
    (and the ONNX exporter traces with it)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r"`torch\.jit\.\w+` is deprecated", FutureWarning)
        yield


def export_torchscript(net: nn.Module, example: torch.Tensor, path: Path) -> Path:
    """Trace ``net`` (eval mode) on ``example`` and save it; returns ``path``."""
    with torch.no_grad(), quiet_jit():
        traced = torch.jit.trace(net, example)
    traced.save(str(path))
    return path


def export_onnx(
    net: nn.Module, example: torch.Tensor, path: Path, opset: int = 17, dynamic: bool = False
) -> Path:
    """Export ``net`` to ONNX (input ``image`` NCHW float32, output ``logits``); returns ``path``."""
    axes = {"image": {0: "batch", 2: "height", 3: "width"}, "logits": {0: "batch", 2: "height", 3: "width"}}
    with torch.no_grad(), quiet_jit():
        torch.onnx.export(
            net,
            (example,),
            str(path),
            input_names=["image"],
            output_names=["logits"],
            opset_version=opset,
            dynamic_axes=axes if dynamic else None,
            dynamo=False,
        )
    return path


def onnx_logits(path: Path, image: torch.Tensor) -> np.ndarray:
    """Run an exported ONNX network with onnxruntime (CPU) on ``image``."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"image": image.numpy()})[0]


def run(cfg: DictConfig) -> dict[str, Any]:
    """Export ``cfg.ckpt_path``'s network (no aux heads); compare each file's output with PyTorch."""
    stage = cfg.stage
    formats = list(stage.formats)
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ValueError(f"stage.formats: unknown {unknown}; choose from {list(FORMATS)}")
    needed = ["onnx", *(["onnxruntime"] if stage.check_onnxruntime else [])] if "onnx" in formats else []
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        raise ModuleNotFoundError(f"stage=export to ONNX needs {missing}: pip install 'segnas[export]' "
                                  "(or export TorchScript only: stage.formats=[torchscript])")
    net = deploy_net(load_checkpoint(cfg.get("ckpt_path")).net).eval()
    out = output_dir(cfg)
    height, width = (int(s) for s in stage.input_size)
    generator = torch.Generator().manual_seed(int(cfg.seed))
    example = torch.randn(1, 3, height, width, generator=generator)
    with torch.no_grad():
        reference = net(example)
    results: dict[str, Any] = {"ckpt_path": str(cfg.ckpt_path), "input": f"{height}x{width}"}
    if "torchscript" in formats:
        path = export_torchscript(net, example, out / "model.torchscript.pt")
        with torch.no_grad(), quiet_jit():
            diff = (torch.jit.load(str(path))(example) - reference).abs().max()
        results |= {"torchscript": str(path), "torchscript_max_abs_diff": float(diff)}
    if "onnx" in formats:
        path = export_onnx(net, example, out / "model.onnx", int(stage.opset), bool(stage.dynamic_shapes))
        results["onnx"] = str(path)
        if stage.check_onnxruntime:
            diff = np.abs(onnx_logits(path, example) - reference.numpy()).max()
            results["onnx_max_abs_diff"] = float(diff)
    for key in ("torchscript_max_abs_diff", "onnx_max_abs_diff"):
        if key in results and results[key] > stage.tolerance:
            raise RuntimeError(f"{key} = {results[key]:.3g} exceeds stage.tolerance = {stage.tolerance}")
    log.info("Exported %s to %s", ", ".join(formats), out)
    return results
