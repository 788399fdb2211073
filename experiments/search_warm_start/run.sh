#!/usr/bin/env bash
# NSGA-II with vs without proxy warm start on the synthetic default, 3 seeds, equal supernet budget
# (96 supernet-scored architectures each; the warm start adds 48 synflow scores of random archs), with the
# two selections of the first population from the pool: top (best proxy) and pareto (rank and crowding over
# proxy and latency).
# One supernet (the default one, seed 0) is trained first and shared by every search.
# Re-running resumes every run from its archive (nothing is scored twice).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-outputs/search_warm_start}
export OMP_NUM_THREADS=1
PY=.venv/bin/python
$PY -m segnas stage=supernet trainer.max_epochs=4 hydra.run.dir="$OUT/supernet"
CKPT="$OUT/supernet/checkpoints/last.ckpt"
COMMON=(stage=search "score.supernet.ckpt=$CKPT" search.random_baseline=false search.hv_ref_cost=6.0
        stage.latency.check_archs=0 stage.progress=false "stage.latency.lut_dir=$OUT/lut")
for seed in 0 1 2; do
  $PY -m segnas "${COMMON[@]}" seed=$seed hydra.run.dir="$OUT/plain_seed$seed"
  for select in top pareto; do
    $PY -m segnas "${COMMON[@]}" seed=$seed search.warm_start=proxy search.warm_start_select=$select \
      hydra.run.dir="$OUT/warm_${select}_seed$seed"
  done
done
$PY experiments/search_warm_start/summarize.py "$OUT" > experiments/search_warm_start/results.md
cat experiments/search_warm_start/results.md
