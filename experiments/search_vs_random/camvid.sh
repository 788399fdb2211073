#!/usr/bin/env bash
# Issue 17 item 2: HyCTAS end to end on real CamVid at quarter resolution (90x120 images, 96x128 crops):
# supernet on the train split -> NSGA-II and random search at equal budget (BN recalibration on train
# images, mIoU on the 101 val images; cost: MACs) -> 3 architectures spread along the NSGA-II front and the
# 3 random-search architectures of closest MACs, retrained from scratch with the same recipe and seed ->
# val mIoU, MACs, latency. Genotypes are copied to experiments/search_vs_random/camvid/.
# Resumable: finished stages are skipped (a finished run folder is a no-op), killed ones resume.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-outputs/search_vs_random/camvid}
DATA=${DATA:-../shared/data/camvid}
PY=${PY:-.venv/bin/python}
HERE=experiments/search_vs_random
export OMP_NUM_THREADS=1
CAMVID=(data=camvid "data.root=$DATA" data.image_scale=0.25 "data.crop_size=[96,128]" data.num_workers=0
        num_threads=1 trainer.enable_progress_bar=false seed=0)
CKPT=$OUT/supernet/checkpoints/last.ckpt

[[ -f $OUT/supernet/results.json ]] || $PY -m segnas stage=supernet "${CAMVID[@]}" trainer.max_epochs=20 \
  hydra.run.dir=$OUT/supernet
$PY -m segnas stage=search "${CAMVID[@]}" "score.supernet.ckpt=$CKPT" search.objective=macs search.initial=uniform \
  search.population=16 search.generations=10 search.hv_ref_cost=0.04 score.evaluation.val_images=101 \
  score.evaluation.recalibration_images=64 "stage.extra_metrics=[params_m]" stage.latency.check_archs=0 \
  stage.progress=false hydra.run.dir=$OUT/search
$PY $HERE/pick.py $OUT/search $HERE/camvid --mode front --score miou --cost macs_g --n 3
for genotype in $HERE/camvid/*.yaml; do
  name=$(basename "$genotype" .yaml)
  $PY -m segnas stage=retrain "stage.genotype=$genotype" "${CAMVID[@]}" stage.filter_multiplier=4 \
    trainer.max_epochs=12 optim.lr=0.05 stage.latency_duration_s=1 hydra.run.dir=$OUT/retrain/$name
done
$PY $HERE/summarize.py camvid $OUT
