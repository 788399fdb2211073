#!/usr/bin/env bash
# Zero-shot search on the synthetic data, then short training of its top-3 and of 3 random picks
# (the random baseline's first draws within the same budget), for each training seed.
# Usage (from the repository root):
#   TRAIN_SEEDS="0 1" bash experiments/saswot_zero_shot_search/top_vs_random.sh OUT_DIR [EPOCHS] [search overrides...]
# The search is skipped when OUT_DIR/search/results.json exists; finished trainings are skipped too.
set -euo pipefail
out=${1:?output folder}; epochs=${2:-6}; shift $(( $# >= 2 ? 2 : 1 ))
py=${PYTHON:-.venv/bin/python}
if [[ ! -f "$out/search/results.json" ]]; then
  $py -m segnas stage=zero_shot_search score.batch.inputs=data score.batch.resolution=[128,128] stage.top_n=3 \
    +score.options.loss_reduction=mean num_threads=1 "$@" hydra.run.dir="$out/search"
fi
for seed in ${TRAIN_SEEDS:-0}; do
  for pick in rank_00 rank_01 rank_02 random_00 random_01 random_02; do
    run="$out/train_${pick}_seed$seed"
    [[ -f "$run/results.json" ]] && continue
    $py -m segnas stage=train model=fasterseg model.genotype="$out/search/genotypes/$pick.yaml" \
      trainer.max_epochs="$epochs" seed="$seed" num_threads=1 hydra.run.dir="$run"
  done
done
$py experiments/saswot_zero_shot_search/summarize_top_vs_random.py "$out"
