#!/usr/bin/env bash
# Issue 17 item 3: SasWOT zero-shot search end to end on real CamVid: the default zero-shot search (FasterSeg
# space, saswot on one CamVid training batch of 16 at 64x128, <= 2 GMACs at 256x512) -> its top 3 and the
# first 3 random-search picks (same budget) trained with one recipe (half resolution, 5 epochs, seed 0)
# -> val mIoU. Genotypes are copied to experiments/search_vs_random/camvid_zero_shot/. Resumable.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-outputs/search_vs_random/camvid_zero_shot}
DATA=${DATA:-../shared/data/camvid}
PY=${PY:-.venv/bin/python}
HERE=experiments/search_vs_random
export OMP_NUM_THREADS=1

$PY -m segnas stage=zero_shot_search data=camvid "data.root=$DATA" data.num_workers=0 num_threads=1 seed=0 \
  +score.options.loss_reduction=mean stage.progress=false hydra.run.dir=$OUT/search
$PY $HERE/pick.py $OUT/search $HERE/camvid_zero_shot --mode top --score score --n 3
for genotype in $HERE/camvid_zero_shot/*.yaml; do
  name=$(basename "$genotype" .yaml)
  $PY -m segnas stage=train model=fasterseg "model.genotype=$genotype" data=camvid "data.root=$DATA" \
    data.image_scale=0.5 data.num_workers=0 trainer=cpu trainer.max_epochs=5 trainer.enable_progress_bar=false \
    num_threads=1 seed=0 hydra.run.dir=$OUT/train/$name
done
$PY $HERE/summarize.py camvid_zero_shot $OUT
