#!/usr/bin/env bash
# Issue 17 item 4: supernet score and zero-cost proxies vs standalone mIoU on real CamVid, 12 networks
# (4 per branch count), the supernet of experiments/search_vs_random/camvid.sh (trained first if absent).
# Resumable: every score is archived as it is computed (correlation.jsonl).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-outputs/correlate_camvid_n12}
SUPERNET=${SUPERNET:-outputs/search_vs_random/camvid/supernet}
DATA=${DATA:-../shared/data/camvid}
PY=${PY:-.venv/bin/python}
export OMP_NUM_THREADS=1
CAMVID=(data=camvid "data.root=$DATA" data.image_scale=0.25 "data.crop_size=[96,128]" data.num_workers=0
        num_threads=1 trainer.enable_progress_bar=false seed=0)
$PY -m segnas stage=supernet "${CAMVID[@]}" trainer.max_epochs=20 hydra.run.dir=$SUPERNET
$PY -m segnas stage=correlate "${CAMVID[@]}" "score.supernet.ckpt=$SUPERNET/checkpoints/last.ckpt" \
  stage.num_archs=12 stage.train_epochs=6 score.evaluation.val_images=101 score.evaluation.recalibration_images=64 \
  'stage.proxy_options={saswot:{loss_reduction:mean}}' hydra.run.dir=$OUT
cp $OUT/correlation.md $OUT/correlation.csv $OUT/correlation.png $OUT/results.json experiments/correlate_camvid_n12/
