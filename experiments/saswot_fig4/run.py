"""SasWOT's Figure 4 on TransNAS-Bench-101 (issue 22 item 5): proxy-expression evolution (``search=topk``) vs
random expression search (``search=random``) at the same budget, over seeds, with ``stage=proxy_evolution``.

Per seed, both algorithms run on the same training/held-out split, scoring batch and cached training
statistics (the seed sets all three and the search's generator): the top-k run computes
``train_statistics.pt``, which the random run of that seed reuses (its fitness context does not name the
algorithm), and the copy is deleted once both runs are done (~0.5 GB per seed; never committed). A finished
run (``results.json``) is skipped, so a killed study resumes.

    OMP_NUM_THREADS=1 python experiments/saswot_fig4/run.py --seeds 0 1 2    # what README.md reports
    python experiments/saswot_fig4/summarize.py        # -> summary.json, results.md, search_curves.png
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
ALGORITHMS = ("topk", "random")
BUDGET = 300  # scored expressions per run: top-k's 20 + 25 iterations x (10 children + 1 random), invalid ones too
SETTINGS = [
    f"search.num_evals={BUDGET}", "stage.train_archs=25", "stage.heldout_archs=25", "stage.rerank_top=3",
    "stage.seed_with_saswot=false", "stage.hand_proxies=[flops,nwot]", "stage.progress=false", "num_threads=1",
]


def command(algorithm: str, seed: int) -> list[str]:
    """The CLI of one run (relative paths from the repository root)."""
    folder = f"experiments/saswot_fig4/runs/{algorithm}_s{seed}"
    return ["python", "-m", "segnas", "stage=proxy_evolution", f"search={algorithm}", f"seed={seed}", *SETTINGS,
            f"hydra.run.dir={folder}"]


def run_seed(seed: int) -> None:
    """Both algorithms on ``seed`` (top-k first: it builds the training statistics the random run reuses)."""
    folders = {a: HERE / "runs" / f"{a}_s{seed}" for a in ALGORITHMS}
    for algorithm in ALGORITHMS:
        folder = folders[algorithm]
        if (folder / "results.json").is_file():
            continue
        stats = folders["topk"] / "train_statistics.pt"
        if algorithm != "topk" and stats.is_file():
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy(stats, folder / stats.name)
        cmd = command(algorithm, seed)
        start = time.perf_counter()
        with open(folder.parent / f"{folder.name}.log", "w") as log:
            subprocess.run([sys.executable, *cmd[1:]], cwd=REPO, stdout=log, stderr=subprocess.STDOUT, check=True)
        print(f"{folder.name}: {time.perf_counter() - start:.0f} s: {' '.join(cmd)}", flush=True)
    if all((f / "results.json").is_file() for f in folders.values()):
        for folder in folders.values():
            (folder / "train_statistics.pt").unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    args = parser.parse_args()
    for seed in args.seeds:
        run_seed(seed)


if __name__ == "__main__":
    main()
