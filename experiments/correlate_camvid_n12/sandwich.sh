#!/usr/bin/env bash
# Issue 24 item 3: the sandwich supernet (the best variant of experiments/supernet_ranking) against the paper's
# prior in the CamVid 12-network correlation, at equal supernet compute (images x paths): prior 20 epochs x 1 path
# vs sandwich 5 epochs x 4 paths (largest + smallest + 2 prior draws). Both are scored against the same 12
# standalone trainings (stage.truth_dir: trained once, shared). Otherwise run.sh's command. Resumable.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-outputs/correlate_camvid_n12_sandwich}
DATA=${DATA:-../shared/data/camvid}
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=1
CAMVID=(data=camvid "data.root=$DATA" data.image_scale=0.25 "data.crop_size=[96,128]" data.num_workers=0
        num_threads=1 trainer.enable_progress_bar=false seed=0)
declare -A SUPERNET_ARGS=([prior]="trainer.max_epochs=20" [sandwich]="trainer.max_epochs=5 stage.sampling=sandwich")
for variant in prior sandwich; do
  # shellcheck disable=SC2086
  $PY -m segnas stage=supernet "${CAMVID[@]}" ${SUPERNET_ARGS[$variant]} hydra.run.dir=$OUT/supernet_$variant
  $PY -m segnas stage=correlate "${CAMVID[@]}" "score.supernet.ckpt=$OUT/supernet_$variant/checkpoints/last.ckpt" \
    stage.num_archs=12 stage.train_epochs=6 score.evaluation.val_images=101 score.evaluation.recalibration_images=64 \
    'stage.proxy_options={saswot:{loss_reduction:mean}}' stage.truth_dir=$OUT/ground_truth hydra.run.dir=$OUT/correlate_$variant
done
$PY experiments/correlate_camvid_n12/summarize_sandwich.py "$OUT"
