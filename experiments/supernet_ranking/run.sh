#!/usr/bin/env bash
# Issue 24: how well does each supernet training variant rank 24 networks of the synthetic default? Every
# variant runs variants.json's "command" with its settings filled in; the 24 networks' standalone ground truth
# (2 seeds) is trained once into $OUT/ground_truth and shared by every variant. Resumable: a re-run skips every
# finished supernet, score and training. Usage: bash experiments/supernet_ranking/run.sh [VARIANT ...]
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-outputs/supernet_ranking}
PY=${PY:-.venv/bin/python}
$PY experiments/supernet_ranking/study.py commands "$OUT" "$@" | while IFS= read -r cmd; do
  echo "$cmd"
  eval "${cmd/python -m/$PY -m}"
done
$PY experiments/supernet_ranking/study.py summary "$OUT"
