#!/usr/bin/env bash
# Supernet-seed replicates (issue 24 follow-up): a variant's supernet trained by stage=supernet with seed S, then
# scored by stage=correlate (seed 0: the same 24 networks) against the 6- and the 20-epoch ground truths. With
# seed 0 this reproduces the variant's own run exactly (its supernet is trained the same way inside correlate).
# Usage: bash experiments/supernet_ranking/replicates.sh VARIANT SEED EPOCHS SAMPLING   (e.g. sandwich_e2 1 2 sandwich)
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-outputs/supernet_ranking}
PY=${PY:-.venv/bin/python}
V=$1; S=$2; EPOCHS=$3; SAMPLING=$4
RUN=$OUT/replicates/${V}_s$S
OMP_NUM_THREADS=1 $PY -m segnas stage=supernet seed="$S" num_threads=1 trainer.max_epochs="$EPOCHS" \
  stage.sampling="$SAMPLING" trainer.enable_progress_bar=false hydra.run.dir="$RUN/supernet"
for E in 6 20; do
  OMP_NUM_THREADS=1 $PY -m segnas stage=correlate seed=0 num_threads=1 stage.num_archs=24 stage.train_epochs=$E \
    'stage.train_seeds=[0,1]' stage.truth_dir="$OUT/ground_truth_e$E" 'stage.proxies=[]' \
    score.supernet.ckpt="$RUN/supernet/checkpoints/last.ckpt" score.evaluation.val_images=64 \
    score.evaluation.recalibration_images=64 trainer.enable_progress_bar=false hydra.run.dir="$RUN/truth_e$E"
done
