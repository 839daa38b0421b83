# Source this file (bash) to use the project's venv-based ROS 2 and the colcon install space.
# Works from any directory; safe to source more than once.
_lavpr_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export LAVPR_ROOT="$_lavpr_root"
export VIRTUAL_ENV="$_lavpr_root/.venv"
case ":$PATH:" in *":$VIRTUAL_ENV/bin:"*) ;; *) export PATH="$VIRTUAL_ENV/bin:$PATH" ;; esac
# lavpr-train (a wrapper running the training venv's command, torch stays out of this venv).
case ":$PATH:" in *":$_lavpr_root/scripts/bin:"*) ;; *) export PATH="$_lavpr_root/scripts/bin:$PATH" ;; esac
# ament_index and colcon find the PyPI ROS packages under the venv prefix.
case ":${AMENT_PREFIX_PATH:-}:" in *":$VIRTUAL_ENV:"*) ;; *) export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}" ;; esac
export CMAKE_PREFIX_PATH="$VIRTUAL_ENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
# The colcon install space (lavpr_interfaces, lavpr_ros), when built.
if [ -f "$_lavpr_root/install/local_setup.bash" ]; then
  # shellcheck disable=SC1091
  COLCON_CURRENT_PREFIX="$_lavpr_root/install" . "$_lavpr_root/install/local_setup.bash"
fi
# Large images between processes: Fast DDS with a 32 MB shared-memory segment.
export FASTDDS_DEFAULT_PROFILES_FILE="${FASTDDS_DEFAULT_PROFILES_FILE:-$_lavpr_root/config/fastdds_shm.xml}"
unset _lavpr_root
