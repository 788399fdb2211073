"""Variants of SasWOT- (``softmax(W) < ReLU(dL/dW)``) on a fixed pool of TransNAS-Bench-101 seg archs.

For every (architecture, input setting) the network is built with ``torch.manual_seed(seed)``, one forward
and one backward of the per-pixel cross-entropy (mean over the N*H*W pixels, the repository default) are run
by :func:`segnas.proxies.stats.collect` (which also gives the NWOT kernel), and every variant is evaluated
from the kept weights ``W`` and gradients ``g`` of the scored layers (``nn.Conv2d`` / ``nn.Linear``):

* softmax axis: ``dim0`` (over output channels, the sibling code), ``dim1`` (PyTorch's implicit dim for 4-D),
  ``flat`` (over the whole flattened weight), ``row`` (per output channel, over its fan-in);
* gradient scale, i.e. the loss reduction (no pixel is ignored): ``x1`` (CE mean over N*H*W), ``xN`` (CE
  mean over each image's pixels, summed over the batch), ``xHW`` (CE summed over each image's pixels, mean
  over the batch), ``xNHW`` (CE summed over everything); the comparison is ``softmax(W) < ReLU(scale * g)``;
* reductions ``elem/layer`` in {sum, mean}^2: sum/sum = count (the paper's formula read literally),
  mean/mean = mean over layers of the per-layer fraction (the sibling code);
* ``scalar``: the per-layer means compared first, ``[mean softmax(W, 0) < mean ReLU(scale * g)]`` (the
  released Auto-Prox/Auto-DAS order of operations), reduced over layers.

Input settings are named ``<images>-<labels>-b<batch>-r<resolution>``: images ``randn`` (N(0, 1)) or
``synth`` (:mod:`segnas.data.synthetic` scenes rendered at 256x256 with 17 classes, resized to the
resolution, normalised with mean = std = 0.5 as TNB does); labels ``rand`` (uniform in 0..16) or ``synth``.

Per-arch rows go to ``<out>/rows.jsonl`` (resumable); ``--report`` prints Kendall tau-b / Spearman per space
and setting against ``valid_acc_final_epoch`` and writes ``<out>/correlations.csv``. Reference proxies
(nwot from the same pass, flops and params via :func:`segnas.proxies.compute`) are scored on the same archs.

Example (2 shared CPU cores, one thread)::

    OMP_NUM_THREADS=1 python experiments/saswot_proxy_correlations/saswot_minus_variants.py \
        --out /tmp/saswot_variants --per-space 50 --settings randn-rand-b8-r64 synth-synth-b8-r128
    python experiments/saswot_proxy_correlations/saswot_minus_variants.py --out /tmp/saswot_variants --report
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from scipy import stats

from segnas.data.synthetic import SyntheticDataset
from segnas.proxies import compute
from segnas.proxies.benchmark import load
from segnas.proxies.measures import nwot
from segnas.proxies.registry import Context
from segnas.proxies.stats import NWOT, WEIGHT_GRADS, PassStats, collect, default_loss
from segnas.spaces import transnas

DEFAULT_CSV = Path(__file__).resolve().parents[3] / "shared/data/transnas/tnb101_segmentsemantic_dev.csv"
AXES = ("dim0", "dim1", "flat", "row")
SCALES = ("x1", "xN", "xHW", "xNHW")
REDUCTIONS = ("sum/sum", "sum/mean", "mean/sum", "mean/mean")
REFERENCE = ("nwot", "flops", "params")
SYNTH_SIZE = 256  # TNB images are 256x256


def softmax(w: torch.Tensor, axis: str) -> torch.Tensor:
    """``softmax(W)`` along ``axis`` (see the module docstring)."""
    if axis == "dim0":
        return torch.softmax(w, dim=0)
    if axis == "dim1":
        return torch.softmax(w, dim=1)
    if axis == "flat":
        return torch.softmax(w.flatten(), dim=0).view_as(w)
    if axis == "row":
        return torch.softmax(w.flatten(1), dim=1).view_as(w)
    raise ValueError(f"unknown softmax axis {axis!r}")


def variant_names() -> list[str]:
    """All variant column names, ``<axis>|<scale>|<elem>/<layer>`` and ``scalar|<scale>|-/<layer>``."""
    names = [f"{a}|{s}|{r}" for a in AXES for s in SCALES for r in REDUCTIONS]
    return names + [f"scalar|{s}|-/{r}" for s in SCALES for r in ("sum", "mean")]


def variants(stats: PassStats, batch: int, pixels: int) -> dict[str, float]:
    """Every SasWOT- variant from one pass; ``pixels`` = H*W of the output."""
    factors = {"x1": 1.0, "xN": float(batch), "xHW": float(pixels), "xNHW": float(batch * pixels)}
    counts = {f"{a}|{s}": [] for a in AXES for s in SCALES}
    sizes, scalar = [], {s: [] for s in SCALES}
    for w, g in zip(stats.weights, stats.grads, strict=True):
        g = torch.relu(g)
        sizes.append(w.numel())
        scaled = {scale: g if factor == 1.0 else factor * g for scale, factor in factors.items()}
        for axis in AXES:
            sm = softmax(w, axis)
            if axis == "dim0":
                mean_sm = float(sm.mean())
            for scale, g_scaled in scaled.items():
                counts[f"{axis}|{scale}"].append(float(torch.count_nonzero(sm < g_scaled)))
        for scale, factor in factors.items():
            scalar[scale].append(float(mean_sm < factor * float(g.mean())))
    size = np.array(sizes, dtype=float)
    out = {}
    for key, per_layer in counts.items():
        count = np.array(per_layer)
        frac = count / size
        out[f"{key}|sum/sum"] = float(count.sum())
        out[f"{key}|sum/mean"] = float(count.mean())
        out[f"{key}|mean/sum"] = float(frac.sum())
        out[f"{key}|mean/mean"] = float(frac.mean())
    for scale, flags in scalar.items():
        out[f"scalar|{scale}|-/sum"] = float(np.sum(flags))
        out[f"scalar|{scale}|-/mean"] = float(np.mean(flags))
    return out


def make_batch(setting: str, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch of ``<images>-<labels>-b<batch>-r<resolution>``."""
    images, labels, b, r = setting.split("-")
    n, res = int(b.removeprefix("b")), int(r.removeprefix("r"))
    gen = torch.Generator().manual_seed(seed)
    scenes = SyntheticDataset(n, SYNTH_SIZE, SYNTH_SIZE, num_classes=transnas.NUM_CLASSES, seed=seed)
    loaded = [scenes.load(i) for i in range(n)] if "synth" in (images, labels) else []
    if images == "randn":
        x = torch.randn(n, 3, res, res, generator=gen)
    elif images == "synth":
        imgs = [cv2.resize(s["image"], (res, res), interpolation=cv2.INTER_LINEAR) for s in loaded]
        x = (torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.5
    else:
        raise ValueError(f"unknown images {images!r}")
    if labels == "rand":
        y = torch.randint(0, transnas.NUM_CLASSES, (n, res, res), generator=gen)
    elif labels == "synth":
        masks = [cv2.resize(s["mask"], (res, res), interpolation=cv2.INTER_NEAREST) for s in loaded]
        y = torch.from_numpy(np.stack(masks)).long()
    else:
        raise ValueError(f"unknown labels {labels!r}")
    return x.contiguous(), y


def pool(csv_path: Path, per_space: int, seed: int) -> list[tuple[str, str, float]]:
    """``per_space`` archs per space drawn with ``random.Random(seed)`` from the sorted CSV archs."""
    rng = random.Random(seed)
    chosen = []
    for space in ("micro", "macro"):
        records = sorted(load(csv_path, space=space), key=lambda r: r.arch)
        chosen += [(r.arch, space, r.target) for r in rng.sample(records, per_space)]
    return chosen


def score(arch: str, setting: str, batch: tuple[torch.Tensor, torch.Tensor], seed: int) -> dict:
    """One pass of ``arch`` on ``batch``: all variants, reference proxies and diagnostics."""
    torch.manual_seed(seed)
    model = transnas.build(arch)
    x, y = batch
    start = time.perf_counter()
    stats = collect(model, x, y, default_loss(), {WEIGHT_GRADS, NWOT})
    ctx = Context(model, x, y, default_loss(), stats)
    row = variants(stats, x.shape[0], stats.output_shape[-1] * stats.output_shape[-2])
    row["nwot"] = nwot(ctx)
    row.update(compute(["flops", "params"], model, x[:1], y[:1]))
    grads = torch.cat([g.flatten() for g in stats.grads])
    row["n_layers"] = len(stats.weights)
    row["n_weights"] = int(grads.numel())
    row["frac_pos_grad"] = float((grads > 0).double().mean())
    row["grad_abs_mean"] = float(grads.abs().mean())
    row["seconds"] = time.perf_counter() - start
    return row


def run(args: argparse.Namespace) -> None:
    """Score the pool under every setting, appending to ``rows.jsonl``."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "rows.jsonl"
    done = set()
    if path.exists():
        for line in path.read_text().splitlines():
            row = json.loads(line)
            done.add((row["arch"], row["setting"]))
    archs = pool(Path(args.csv), args.per_space, args.seed)
    torch.set_num_threads(args.threads)
    for setting in args.settings:
        batch = make_batch(setting, args.seed)
        limit = args.limit or len(archs)
        todo = archs[: args.per_space][:limit] + archs[args.per_space :][:limit]
        for arch, space, target in todo:
            if (arch, setting) in done:
                continue
            row = {"arch": arch, "space": space, "target": target, "setting": setting}
            row.update(score(arch, setting, batch, args.seed))
            with path.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"{setting} {space} {arch} {row['seconds']:.1f}s", flush=True)


def _bootstrap_std(x: np.ndarray, y: np.ndarray, reps: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    taus = []
    for _ in range(reps):
        idx = rng.integers(0, len(x), len(x))
        tau = stats.kendalltau(x[idx], y[idx]).statistic
        if math.isfinite(tau):
            taus.append(tau)
    return float(np.std(taus)) if taus else math.nan


KEY_VARIANTS = (
    "dim0|x1|sum/sum",
    "dim0|x1|mean/mean",
    "dim0|xN|sum/sum",
    "dim0|xN|mean/mean",
    "dim0|xHW|sum/sum",
    "dim0|xNHW|sum/sum",
    "dim0|xHW|mean/sum",
    "dim0|xHW|mean/mean",
    "dim1|x1|sum/sum",
    "flat|x1|sum/sum",
    "row|x1|sum/sum",
    "row|xN|mean/sum",
    "scalar|xHW|-/sum",
)


def _cell(value: float) -> str:
    return "const" if math.isnan(value) else f"{value:.2f}"  # NaN: the score is the same for every arch


def summary(table: list[dict]) -> None:
    """Condensed table: Kendall ``micro / macro`` of the reference proxies and key variants per setting."""
    settings = sorted({t["setting"] for t in table})
    by = {(t["setting"], t["space"], t["variant"]): t for t in table}
    sizes = " ".join(
        f"{s}: {by[(s, 'micro', 'nwot')]['n']}/{by[(s, 'macro', 'nwot')]['n']}"
        for s in settings
        if (s, "micro", "nwot") in by and (s, "macro", "nwot") in by
    )
    print(f"\n## Kendall tau-b micro / macro (archs per space {sizes})")
    print("| variant | " + " | ".join(settings) + " |")
    print("|---" * (len(settings) + 1) + "|")
    rows = [(n, "kendall") for n in (*REFERENCE, *KEY_VARIANTS)]
    rows += [(n, "kendall_saswot_avt") for n in ("dim0|x1|sum/sum", "dim0|x1|mean/mean", "dim0|xHW|sum/sum")]
    for name, column in rows:
        label = name if column == "kendall" else f"SasWOT = avt({name}) + avt(nwot)"
        cells = []
        for s in settings:
            mi, ma = by.get((s, "micro", name)), by.get((s, "macro", name))
            cells.append("—" if mi is None or ma is None else f"{_cell(mi[column])} / {_cell(ma[column])}")
        print(f"| {label} | " + " | ".join(cells) + " |")


def _avt(values: np.ndarray) -> np.ndarray:
    span = np.ptp(values)
    return (values - values.min()) / span if span > 0 else np.zeros_like(values)


def report(args: argparse.Namespace) -> None:
    """Kendall tau-b / Spearman per (setting, space, variant) vs the target; also vs params."""
    out = Path(args.out)
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["setting"], row["space"]), []).append(row)
    table = []
    for (setting, space), group in sorted(groups.items()):
        target = np.array([r["target"] for r in group])
        params = np.array([r["params"] for r in group])
        for name in [*REFERENCE, *variant_names()]:
            values = np.array([r[name] for r in group])
            constant = np.ptp(values) == 0
            kd = math.nan if constant else stats.kendalltau(values, target).statistic
            sp = math.nan if constant else stats.spearmanr(values, target).statistic
            kp = math.nan if constant else stats.kendalltau(values, params).statistic
            std = math.nan if constant else _bootstrap_std(values, target, args.bootstrap, args.seed)
            # SasWOT (eq. 3-4) with the AVT min/max taken over the evaluated archs themselves
            comb = _avt(values) + _avt(np.array([r["nwot"] for r in group]))
            kd_comb = stats.kendalltau(comb, target).statistic
            table.append(
                {
                    "setting": setting,
                    "space": space,
                    "n": len(group),
                    "variant": name,
                    "kendall": kd,
                    "kendall_boot_std": std,
                    "spearman": sp,
                    "kendall_vs_params": kp,
                    "kendall_saswot_avt": kd_comb,
                    "median_value": float(np.median(values)),
                }
            )
    with (out / "correlations.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    summary(table)
    if args.summary_only:
        return
    settings = sorted({t["setting"] for t in table})
    for setting in settings:
        print(f"\n## {setting}")
        print(
            "| variant | micro Kd | micro Sp | macro Kd | macro Sp | Kd vs params micro/macro "
            "| Kd of +nwot (SasWOT) micro/macro | median micro/macro |"
        )
        print("|---|---|---|---|---|---|---|---|")
        by = {(t["space"], t["variant"]): t for t in table if t["setting"] == setting}
        for name in [*REFERENCE, *variant_names()]:
            mi, ma = by.get(("micro", name)), by.get(("macro", name))
            if mi is None or ma is None:
                continue
            print(
                f"| {name} | {mi['kendall']:.3f} | {mi['spearman']:.3f} | {ma['kendall']:.3f} "
                f"| {ma['spearman']:.3f} | {mi['kendall_vs_params']:.2f} / {ma['kendall_vs_params']:.2f} "
                f"| {mi['kendall_saswot_avt']:.3f} / {ma['kendall_saswot_avt']:.3f} "
                f"| {mi['median_value']:.4g} / {ma['median_value']:.4g} |"
            )


def diagnose(args: argparse.Namespace) -> None:
    """Per-layer table of one arch: C_out, numel, fraction passing (softmax dim 0) at each gradient scale."""
    for setting in args.settings:
        x, y = make_batch(setting, args.seed)
        torch.manual_seed(args.seed)
        model = transnas.build(args.diagnose)
        st = collect(model, x, y, default_loss(), {WEIGHT_GRADS})
        hw = st.output_shape[-1] * st.output_shape[-2]
        n = x.shape[0]
        factors = {"x1": 1.0, "xN": float(n), "xHW": float(hw), "xNHW": float(n * hw)}
        print(f"\n{args.diagnose} {setting}")
        print("layer shape 1/C_out median|g+| " + " ".join(f"frac{s}" for s in factors))
        for i, (w, g) in enumerate(zip(st.weights, st.grads, strict=True)):
            sm, gp = torch.softmax(w, dim=0), torch.relu(g)
            fracs = " ".join(f"{float((sm < f * gp).double().mean()):.4f}" for f in factors.values())
            pos = gp[gp > 0]
            med = float(pos.median()) if pos.numel() else 0.0
            print(f"{i:3d} {tuple(w.shape)} {1 / w.shape[0]:.2e} {med:.2e} {fracs}")


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", required=True, help="output folder (rows.jsonl, correlations.csv)")
    parser.add_argument("--csv", default=str(DEFAULT_CSV), help="TNB-101 segmentsemantic dev CSV")
    parser.add_argument("--per-space", type=int, default=60, help="pool size per space")
    parser.add_argument(
        "--limit", type=int, default=0, help="score only the first LIMIT pool archs per space"
    )
    parser.add_argument("--seed", type=int, default=0, help="pool, batch and init seed")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--settings", nargs="+", default=["randn-rand-b8-r64"], help="input settings")
    parser.add_argument("--report", action="store_true", help="correlate the rows instead of scoring")
    parser.add_argument("--summary-only", action="store_true", help="with --report: only the condensed table")
    parser.add_argument("--bootstrap", type=int, default=200, help="bootstrap reps for the Kendall std")
    parser.add_argument("--diagnose", default="", help="print the per-layer table of this arch and exit")
    args = parser.parse_args()
    if args.diagnose:
        diagnose(args)
    elif args.report:
        report(args)
    else:
        run(args)


if __name__ == "__main__":
    main()
