#!/usr/bin/env bash
# Candidate zero-shot scores vs trained mIoU on the FasterSeg space (CamVid, reduced resolution).
# Usage: experiments/saswot_zero_shot_camvid/run.sh [OUT] (from the repository root; N, EPOCHS, REPLICATES, DATA
# overridable). Resumable: a run whose results.json exists is skipped, a killed training resumes from its
# last.ckpt, and the scores are cached in OUT/scores.json.
set -euo pipefail
OUT=${1:-outputs/saswot_zero_shot_camvid}
N=${N:-16}
EPOCHS=${EPOCHS:-5}
REPLICATES=${REPLICATES:-3}   # the first nets trained again with seed 1: the noise of the mIoU ground truth
DATA=${DATA:-../shared/data/camvid}
PY=${PY:-.venv/bin/python}
HERE=experiments/saswot_zero_shot_camvid
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

train() {  # GENOTYPE SEED RUN_DIR
  [[ -f "$3/results.json" ]] && return
  "$PY" -m segnas stage=train model=fasterseg "model.genotype=$1" data=camvid "data.root=$DATA" \
    data.image_scale=0.5 data.num_workers=0 trainer=cpu "trainer.max_epochs=$EPOCHS" \
    trainer.enable_progress_bar=false num_threads=1 "seed=$2" "hydra.run.dir=$3"
}

"$PY" "$HERE/sample.py" "$OUT" "$N"
genotypes=("$OUT"/genotypes/net_*.yaml)
for genotype in "${genotypes[@]}"; do
  train "$genotype" 0 "$OUT/train/$(basename "$genotype" .yaml)"
done
for genotype in "${genotypes[@]:0:$REPLICATES}"; do
  train "$genotype" 1 "$OUT/train_seed1/$(basename "$genotype" .yaml)"
done
"$PY" "$HERE/summarize.py" "$OUT" --data "$DATA"
