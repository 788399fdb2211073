#!/usr/bin/env bash
# Candidate zero-shot scores vs trained mIoU on the FasterSeg space (CamVid, reduced resolution).
# Usage: experiments/saswot_zero_shot_camvid/run.sh [OUT] (from the repository root; N, EPOCHS, DATA overridable).
# Resumable: a net whose results.json exists is skipped, a killed training resumes from its last.ckpt, and
# the scores are cached in OUT/scores.json.
set -euo pipefail
OUT=${1:-outputs/saswot_zero_shot_camvid}
N=${N:-12}
EPOCHS=${EPOCHS:-5}
DATA=${DATA:-../shared/data/camvid}
PY=${PY:-.venv/bin/python}
HERE=experiments/saswot_zero_shot_camvid
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

"$PY" "$HERE/sample.py" "$OUT" "$N"
for genotype in "$OUT"/genotypes/net_*.yaml; do
  name=$(basename "$genotype" .yaml)
  run="$OUT/train/$name"
  [[ -f "$run/results.json" ]] && continue
  "$PY" -m segnas stage=train model=fasterseg "model.genotype=$genotype" data=camvid "data.root=$DATA" \
    data.image_scale=0.5 data.num_workers=0 trainer=cpu "trainer.max_epochs=$EPOCHS" \
    trainer.enable_progress_bar=false num_threads=1 "hydra.run.dir=$run"
done
"$PY" "$HERE/summarize.py" "$OUT" --data "$DATA"
