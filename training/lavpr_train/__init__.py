"""lavpr_train: training and ONNX export for the lavpr_ros runtime models.

This package (and torch) lives only in ``training/.venv``; the runtime under ``src/`` reads the
exported ``models/<model_id>/`` folders (ONNX file + ``manifest.yaml``) and never imports torch.
"""

__version__ = "0.1.0"
