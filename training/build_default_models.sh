#!/usr/bin/env bash
# `make models`: set up training/.venv (idempotent) and export the default models into
# models/ (or $LAVPR_MODELS_DIR) -- only those whose manifest.yaml is absent.
#
#   training/build_default_models.sh           # build what is missing
#   training/build_default_models.sh --force   # rebuild both
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$HERE")"
OUT="${LAVPR_MODELS_DIR:-$ROOT/models}"
VENV="${LAVPR_TRAIN_VENV:-$HERE/.venv}"

FORCE=()
if [[ "${1:-}" == "--force" ]]; then FORCE=(--force); fi

if [[ ${#FORCE[@]} -eq 0 && -f "$OUT/mobilenetv2-gem-imagenet/manifest.yaml" &&
      -f "$OUT/minilm-l6-v2/manifest.yaml" ]]; then
    echo "build_default_models.sh: default models already in $OUT (--force to rebuild)"
    exit 0
fi

"$HERE/setup.sh"
# Offline only; 2 threads (the machine is shared).
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
"$VENV/bin/lavpr-train" build-defaults --out "$OUT" "${FORCE[@]}"
