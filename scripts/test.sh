#!/usr/bin/env bash
# The test suite: ruff, the runtime tests (real DDS processes, real data) and the training tests.
# Called by `make test` after set-up; extra arguments go to the runtime pytest run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
set +u
# shellcheck disable=SC1091
source scripts/env.sh
set -u
echo "== ruff check"
ruff check .
echo "== runtime tests"
LAVPR_REQUIRE_MODELS=1 python -m pytest tests --ignore=tests/training "$@"
if [ -x training/.venv/bin/python ]; then
  echo "== training tests"
  PYTHONPATH="$ROOT/src/lavpr_ros${PYTHONPATH:+:$PYTHONPATH}" \
    training/.venv/bin/python -m pytest tests/training -p no:cacheprovider
fi
