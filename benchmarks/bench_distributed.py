"""Scale-out benchmarks: candidate evaluations per second of `stage=search` and supernet training images per
second of `stage=supernet` with 1 and 2 processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from registry import Table, benchmark

REPO = Path(__file__).resolve().parents[1]
DATA = ["data.num_train=64", "data.num_val=32", "data.height=128", "data.width=128", "data.crop_size=[128,128]",
        "trainer.accelerator=cpu", "trainer.enable_progress_bar=false", "logger=none"]
SEARCH = ["score.evaluation.recalibration_images=32", "score.evaluation.val_images=32", "stage.progress=false",
          "search.population=16", "search.generations=2", "search.objective=params", "stage.extra_metrics=[]",
          "stage.latency.check_archs=0", "search.random_baseline=false"]


def _run(args: list[str], processes: int, threads: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    launch = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}", "--master_port=29544"]
    command = [*(launch if processes > 1 else [sys.executable]), "-m", "segnas", *args, f"num_threads={threads}"]
    subprocess.run(command, cwd=REPO, env=env, check=True, capture_output=True)


@benchmark
def search_sharded_evaluation() -> Table:
    """Supernet-scored candidate evaluations per second (BN recalibration on 32 images + mIoU on 32 images,
    128x128, the default CPU supernet) of one 32-candidate NSGA-II search, in 1 process and sharded over 2
    processes with torchrun (gloo), at equal total threads."""
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "supernet"
        _run(["stage=supernet", *DATA, "trainer.max_epochs=1", f"hydra.run.dir={ckpt}"], 1, 2)
        rows: Table = []
        for processes, threads in ((1, 1), (1, 2), (2, 1)):
            out = Path(tmp) / f"p{processes}t{threads}"
            _run(["stage=search", *DATA, *SEARCH, f"score.supernet.ckpt={ckpt / 'checkpoints' / 'last.ckpt'}",
                  f"hydra.run.dir={out}"], processes, threads)
            result = json.loads((out / "results.json").read_text())
            rows.append({"processes": processes, "threads per process": threads,
                         "candidates": result["n_computed_this_run"],
                         "per rank": result["evaluated_per_rank"],
                         "search s": round(result["search_seconds"], 1),
                         "evaluations / s": round(result["n_computed_this_run"] / result["search_seconds"], 2)})
        base = rows[0]["evaluations / s"]
        for row in rows:
            row["vs 1 process, 1 thread"] = f"{row['evaluations / s'] / base:.2f}x"
        return rows


SUPERNET_EPOCHS = 10


@benchmark
def supernet_ddp_training() -> Table:
    """Supernet training speed (the default CPU supernet, 128x128 synthetic images, batch 8 per process, each
    process its own sampled path per step) in 1 process and with DDP over 2 processes (`trainer=ddp_cpu`,
    gloo, Lightning's launcher), 10 epochs of 64 images, no validation: rank 0's training time as Lightning's
    `Timer` callback records it in the checkpoint (start-up excluded)."""
    rows: Table = []
    with tempfile.TemporaryDirectory() as tmp:
        for processes, threads in ((1, 1), (1, 2), (2, 1)):
            ddp = ["trainer=ddp_cpu", f"trainer.devices={processes}"] if processes > 1 else []
            out = Path(tmp) / f"p{processes}t{threads}"
            _run(["stage=supernet", *DATA, *ddp, f"trainer.max_epochs={SUPERNET_EPOCHS}", "trainer.limit_val_batches=0",
                  "callbacks.model_checkpoint=null", "+callbacks.timer._target_=lightning.pytorch.callbacks.Timer",
                  f"hydra.run.dir={out}"], 1, threads)
            ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
            step_s = ckpt["callbacks"]["Timer"]["time_elapsed"]["train"] / ckpt["global_step"]
            rows.append({"processes": processes, "threads per process": threads, "steps": ckpt["global_step"],
                         "images per step": 8 * processes, "s / step": round(step_s, 3),
                         "images / s": round(8 * processes / step_s, 2)})
    base = rows[0]["images / s"]
    for row in rows:
        row["vs 1 process, 1 thread"] = f"{row['images / s'] / base:.2f}x"
    return rows
