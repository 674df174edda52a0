"""Export of the network to ONNX and TensorRT (``python -m clrkdnet_core.export``)."""
