"""ONNX export of image and text models, with parity checks and manifest writing."""
