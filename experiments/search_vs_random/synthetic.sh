#!/usr/bin/env bash
# Issue 17 item 1: NSGA-II vs random search at equal budget on the synthetic default, 5 seeds, paired.
# Each seed trains its own supernet and runs both searches (`stage=search` always runs the random baseline
# with the same number of distinct architectures). The cost is MACs (exact, machine-independent), the
# hypervolume reference is fixed (mIoU 0 %, 0.05 GMACs), so a seed's two hypervolumes reproduce on any
# machine of the same kind. Re-running resumes every unfinished run (nothing is scored twice).
set -euo pipefail
cd "$(dirname "$0")/../.."
# KIND=synthetic_sandwich EXTRA="score.supernet.sampling=sandwich": the same study with extra overrides, summarised
# under its own entry (issue 24: the supernet's sampling in the search study).
KIND=${KIND:-synthetic}
EXTRA=${EXTRA:-}
OUT=${OUT:-outputs/search_vs_random/$KIND}
PY=${PY:-.venv/bin/python}
COMMAND=$(python3 -c "import json; print(json.load(open('experiments/search_vs_random/synthetic_command.json'))['command'])")
for seed in 0 1 2 3 4; do
  cmd=${COMMAND//\{seed\}/$seed}
  cmd=${cmd//\{dir\}/$OUT/seed_$seed}
  cmd="${cmd/python -m/$PY -m} $EXTRA"
  echo "$cmd"
  eval "$cmd"
done
$PY experiments/search_vs_random/summarize.py "$KIND" "$OUT" "$EXTRA"
