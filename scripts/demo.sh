#!/usr/bin/env bash
# The main job: the node graph on a real recorded sequence (Nordland summer then winter), loop
# closures printed as they happen, then the metrics; the report is left in results/demo.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
set +u
# shellcheck disable=SC1091
source scripts/env.sh
set -u
lavpr demo "$@"
