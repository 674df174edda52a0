"""Eager PyTorch backend: the network itself, in eval and inference mode."""

from typing import ClassVar

import torch
from torch import nn

from clrkdnet_core.backends.base import check_precision
from clrkdnet_core.errors import BackendError
from clrkdnet_core.models.fusion import fold_batch_norms


class TorchBackend:
    """Runs the network eagerly on ``device``, BatchNorm folded, channels-last; optionally float16 (CUDA)."""

    name = "torch"
    PRECISIONS: ClassVar[dict[str, tuple[str, ...]]] = {"cpu": ("fp32",), "cuda": ("fp32", "fp16")}

    def __init__(
        self,
        model: nn.Module,
        device: torch.device | str = "cpu",
        *,
        precision: str = "fp32",
        channels_last: bool = True,
        fold_batchnorm: bool = True,
    ) -> None:
        """
        Args:
            model: the network (prepared for inference in place: eval mode, moved to ``device``).
            device: where the network runs.
            precision: ``fp32``, or ``fp16`` on a CUDA device; outputs are returned as float32.
            channels_last: NHWC memory layout: faster convolutions with oneDNN on CPUs and cuDNN on GPUs.
            fold_batchnorm: merge each BatchNorm into the convolution before it (outputs equal to ~1e-5).
        """
        if model is None:
            raise BackendError("torch backend needs a model")
        self.device = torch.device(device)
        check_precision(self, self.device, precision)
        self.precision = precision
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        model.eval()
        if fold_batchnorm:
            fold_batch_norms(model)
        self.model = model.to(self.device, self.dtype, memory_format=self.memory_format)

    @torch.inference_mode()
    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        batch = batch.to(self.device, self.dtype, non_blocking=True).contiguous(
            memory_format=self.memory_format
        )
        return self.model(batch).float()
