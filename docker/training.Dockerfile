# lavpr_ros training: CUDA PyTorch (the PyPI torch wheels bundle CUDA) + the training workspace.
# Build from the repository root:
#   docker build -f docker/training.Dockerfile -t lavpr_ros:training .
#   docker run --gpus all --ipc host -v $PWD/models:/ws/models -v /data:/data \
#     -e LAVPR_DATA=/data lavpr_ros:training lavpr-train --help
FROM python:3.11-slim

RUN apt-get update && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /ws
COPY training/requirements.txt training/requirements-nodeps.txt /ws/training/
RUN pip install --no-cache-dir -r training/requirements.txt \
    && pip install --no-cache-dir --no-deps -r training/requirements-nodeps.txt
COPY training/ /ws/training/
COPY src/lavpr_ros/ /ws/src/lavpr_ros/
RUN pip install --no-cache-dir --no-deps -e training
ENV PYTHONPATH=/ws/src/lavpr_ros
CMD ["lavpr-train", "--help"]
