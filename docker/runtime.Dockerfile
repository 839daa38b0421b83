# lavpr_ros runtime: ROS 2 Jazzy + ONNX Runtime (CUDA/TensorRT EPs) + TensorRT, workspace built
# with colcon. Build from the repository root:
#   docker build -f docker/runtime.Dockerfile -t lavpr_ros:runtime .
#   docker run --gpus all --net host -v $PWD/models:/ws/models lavpr_ros:runtime \
#     ros2 launch lavpr_ros vpr.launch.py
FROM ros:jazzy-ros-base

RUN apt-get update && apt-get install -y --no-install-recommends \
      python3-pip python3-numpy python3-colcon-common-extensions \
      ros-jazzy-sensor-msgs ros-jazzy-geometry-msgs ros-jazzy-nav-msgs ros-jazzy-std-srvs \
      ros-jazzy-visualization-msgs ros-jazzy-diagnostic-msgs ros-jazzy-launch-ros \
      ros-jazzy-rmw-fastrtps-cpp \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /ws
COPY requirements/docker-runtime.txt requirements/gpu.txt /ws/requirements/
RUN pip3 install --no-cache-dir --break-system-packages \
      -r requirements/docker-runtime.txt -r requirements/gpu.txt

COPY src/ /ws/src/
COPY launch/ /ws/launch/
COPY config/ /ws/config/
RUN . /opt/ros/jazzy/setup.sh && colcon build --base-paths src --cmake-args -DBUILD_TESTING=OFF

COPY docker/entrypoint.sh /entrypoint.sh
ENV RMW_IMPLEMENTATION=rmw_fastrtps_cpp \
    FASTDDS_DEFAULT_PROFILES_FILE=/ws/install/lavpr_ros/share/lavpr_ros/config/fastdds_shm.xml
ENTRYPOINT ["/entrypoint.sh"]
# SIGTERM (docker stop's default) would orphan the nodes of ros2 launch: stop it with SIGINT.
STOPSIGNAL SIGINT
CMD ["ros2", "launch", "lavpr_ros", "vpr.launch.py"]
