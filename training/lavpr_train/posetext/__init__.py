"""Pose-text encoder (SPARTAN idea): generator, contrastive training, evaluation, ONNX export.
The ``posetext-*`` commands are in :mod:`.cli`."""
