"""``stage=correlate``: does the supernet rank architectures like training them does? (paper Table 1, §4.5)

Samples ``stage.num_archs`` genotypes, scores each with the supernet (BN recalibration + validation
subset, as ``stage=search``) and trains each standalone from scratch for ``stage.train_epochs``; reports
Kendall tau, Spearman and Pearson between the two mIoUs (paper: tau 0.58, rho 0.79 for 10 networks
trained 40k iterations) with ``correlation.csv`` and ``correlation.png``. Both scores are kept in
``correlation.jsonl`` as they are computed, so a re-run in the same folder skips finished networks.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig

from segnas.callbacks.history import write_rows_csv
from segnas.data.base import SegmentationDataModule
from segnas.lit.segmentation import SegmentationModule
from segnas.metrics import rank_correlations
from segnas.search.archive import Archive, genotype_key
from segnas.search.evaluator import Evaluator
from segnas.spaces import save_genotype
from segnas.spaces.hyctas import HyCTASGenotype
from segnas.stages.common import build_datamodule, to_container
from segnas.stages.search import device_of, prepare_supernet, supernet_miou
from segnas.utils.run import output_dir, seed_everything

log = logging.getLogger(__name__)


class StandaloneMIoU:
    """Final validation mIoU (%) of a genotype's network trained from scratch with ``cfg.optim``.

    Every network is trained with the run's seed (whatever the order), for ``epochs`` epochs of the
    trainer group's settings, without checkpoints or loggers, in ``folder/<genotype hash>``.
    """

    def __init__(
        self, cfg: DictConfig, datamodule: SegmentationDataModule, folder: Path, filter_multiplier: int,
        output_stride: int, epochs: int,
    ) -> None:
        self.cfg, self.datamodule, self.folder = cfg, datamodule, folder
        self.filter_multiplier, self.output_stride, self.epochs = filter_multiplier, output_stride, epochs

    def __call__(self, genotype: HyCTASGenotype) -> float:
        meta = self.datamodule.metadata()
        name = hashlib.sha1(genotype_key(genotype).encode()).hexdigest()[:12]
        path = save_genotype(genotype, self.folder / name / "genotype.yaml")
        seed_everything(int(self.cfg.seed))
        module = SegmentationModule(
            net_config={
                "_target_": "segnas.models.hyctas_net.build_hyctas_net",
                "genotype": str(path),
                "filter_multiplier": self.filter_multiplier,
                "output_stride": self.output_stride,
            },
            num_classes=meta["num_classes"],
            class_names=meta["class_names"],
            ignore_index=meta["ignore_index"],
            **to_container(self.cfg.optim),
        )
        trainer = instantiate(
            self.cfg.trainer, max_epochs=self.epochs, logger=False, callbacks=[], enable_checkpointing=False,
            default_root_dir=str(path.parent),
        )
        trainer.fit(module, datamodule=self.datamodule)
        return float(trainer.callback_metrics["val/mIoU"])


def plot_correlation(rows: list[dict[str, Any]], corr: dict[str, float], path: Path) -> None:
    """Supernet-estimated vs standalone mIoU, one point per network."""
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    x = [r["supernet_miou"] for r in rows]
    y = [r["standalone_miou"] for r in rows]
    ax.scatter(x, y, c=[r["num_branches"] for r in rows], cmap="viridis", vmin=1, vmax=3, s=30)
    ax.set_xlabel("supernet mIoU (%)")
    ax.set_ylabel("standalone mIoU (%)")
    ax.set_title(f"Kendall tau {corr['kendall']:.2f}, Pearson {corr['pearson']:.2f} (n={len(rows)})")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(cfg: DictConfig) -> dict[str, Any]:
    """Score ``stage.num_archs`` random genotypes both ways and correlate the scores."""
    out = output_dir(cfg)
    datamodule = build_datamodule(cfg)
    module, _ = prepare_supernet(cfg, datamodule, out)
    space = module.space
    rng = np.random.default_rng([int(cfg.seed), 7])
    genotypes: list[HyCTASGenotype] = []
    while len(genotypes) < int(cfg.stage.num_archs):
        g = space.sample(rng)
        if g not in genotypes:
            genotypes.append(g)
    standalone = StandaloneMIoU(cfg, datamodule, out / "standalone", space.filter_multiplier,
                                module.hparams.output_stride, int(cfg.stage.train_epochs))
    evaluator = Evaluator(
        {"supernet_miou": supernet_miou(cfg, module, datamodule, device_of(cfg.stage.device)),
         "standalone_miou": standalone},
        Archive(out / "correlation.jsonl"),
    )
    rows = []
    for i, g in enumerate(genotypes):
        metrics = evaluator(g, index=i)
        rows.append({"index": i, "num_branches": g.num_branches, "head": "_".join(map(str, g.head)), **metrics})
        log.info("network %d/%d: supernet %.2f, standalone %.2f", i + 1, len(genotypes),
                 metrics["supernet_miou"], metrics["standalone_miou"])
    corr = rank_correlations([r["supernet_miou"] for r in rows], [r["standalone_miou"] for r in rows])
    write_rows_csv(out / "correlation.csv", rows)
    plot_correlation(rows, corr, out / "correlation.png")
    log.info("Kendall tau %.3f, Pearson %.3f over %d networks", corr["kendall"], corr["pearson"], len(rows))
    return {**corr, "n": len(rows), "train_epochs": int(cfg.stage.train_epochs), "networks": rows,
            "n_computed_this_run": evaluator.n_computed}
