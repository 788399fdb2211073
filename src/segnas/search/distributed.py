"""Candidate evaluation sharded over the processes of a ``torch.distributed`` job (``torchrun``, ``srun``).

Every rank runs the same search with the same seed (single program, multiple data), so every rank takes the
same decisions; only the expensive part, computing the metrics of a batch of new candidates, is split:
candidate ``i`` of a batch is computed by rank ``i % world_size`` and the results are gathered on every
rank. Metrics computed one at a time (budget checks) are computed on rank 0 and broadcast, so that ranks
never disagree (e.g. on a measured latency), and so are the metrics of a :class:`RankZeroObjective` (a latency
lookup table, which measures its entries lazily: one table, rank 0's, prices every candidate of the job). Only
rank 0 writes files.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ranks:
    """This process's place in the job (``world_size`` 1: no distribution)."""

    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that writes the archive and the outputs."""
        return self.rank == 0

    def gather(self, obj: Any) -> list[Any]:
        """``obj`` of every rank, in rank order."""
        if self.world_size == 1:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if self.world_size == 1:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]


class RankZeroObjective:
    """An objective that only rank 0 computes (``objective``: None on the other ranks), so every rank of a job
    gets rank 0's values. A call made by every rank in step (a budget, a calibration draw) returns rank 0's
    value on all of them; :class:`~segnas.search.evaluator.Evaluator` computes it with :meth:`on_main` on rank
    0 alone and broadcasts the values with the rest of a round's metrics."""

    def __init__(self, objective: Callable[[Any], float] | None, ranks: Ranks) -> None:
        if ranks.is_main and objective is None:
            raise ValueError("rank 0 needs the objective it computes for the other ranks")
        self.objective, self.ranks = objective, ranks

    def on_main(self, genotype: Any) -> float:
        """The value, computed here (rank 0 only)."""
        if self.objective is None:
            raise RuntimeError(f"rank {self.ranks.rank} asked for a value that only rank 0 computes")
        return self.objective(genotype)

    def __call__(self, genotype: Any) -> float:
        """Rank 0's value on every rank (every rank calls this in step)."""
        return self.ranks.broadcast(self.on_main(genotype) if self.ranks.is_main else None)


def init_ranks() -> Ranks:
    """The job's ranks: joins the process group that ``torchrun``/``srun`` describe in the environment
    (gloo on CPU, NCCL with CUDA), or a single process when there is none."""
    if dist.is_available() and dist.is_initialized():
        return Ranks(dist.get_rank(), dist.get_world_size())
    world_size = int(os.environ.get("WORLD_SIZE", os.environ.get("SLURM_NTASKS", "1")))
    if world_size <= 1:
        return Ranks()
    if "MASTER_ADDR" not in os.environ:
        raise RuntimeError("a multi-process search needs MASTER_ADDR/MASTER_PORT: launch it with torchrun, or "
                           "srun with the torch.distributed environment set (see the README's SLURM section)")
    rank = int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")))
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend, rank=rank, world_size=world_size)
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", os.environ.get("SLURM_LOCALID", "0"))))
    log.info("rank %d of %d (%s)", rank, world_size, backend)
    return Ranks(rank, world_size)


@contextmanager
def job_ranks() -> Iterator[Ranks]:
    """:func:`init_ranks` for the length of a ``with`` block: a process group joined here is left at its end,
    after a barrier on success, so that no rank exits while still in the group (a gloo rank that exits
    in its group can abort at exit, "terminate called without an active exception")."""
    joined_here = not (dist.is_available() and dist.is_initialized())
    ranks = init_ranks()
    succeeded = False
    try:
        yield ranks
        succeeded = True
    finally:
        if joined_here and ranks.world_size > 1:
            if succeeded:
                dist.barrier()
            dist.destroy_process_group()
