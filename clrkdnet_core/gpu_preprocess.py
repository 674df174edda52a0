"""Pre-processing on the inference device: crop, resize, BGR/255 and channels-last, from a pinned host buffer.

The CPU path (:mod:`clrkdnet_core.preprocess`) resizes with OpenCV before the upload; here only the raw uint8
camera image crosses the bus (one pinned-memory copy, asynchronous), and cropping and resizing run on the GPU.
Resizing uses ``torch.nn.functional.interpolate`` (bicubic, half-pixel centres, no antialiasing, rounded and
clamped to uint8 levels like OpenCV's uint8 output). OpenCV's cubic filter uses fixed-point weights, so the
two paths differ by at most a couple of grey levels per pixel (measured and bounded in the tests).
"""

import numpy as np
import torch
import torch.nn.functional as F

from clrkdnet_core.geometry import ImageGeometry
from clrkdnet_core.preprocess import crop_top


class DevicePreprocessor:
    """Turns HxWx3 uint8 BGR images into a (B, 3, img_h, img_w) float tensor on ``device``."""

    def __init__(
        self, geometry: ImageGeometry, device: torch.device | str, *, channels_last: bool = True
    ) -> None:
        self.geometry = geometry
        self.device = torch.device(device)
        self.channels_last = channels_last
        self._pinned = self.device.type == "cuda"
        self._host: torch.Tensor | None = None
        self._upload_done: torch.cuda.Event | None = None

    def __call__(self, images: list[np.ndarray]) -> torch.Tensor:
        """Pre-process ``images`` (any sizes) into one batch."""
        batch = torch.cat([self._one(image) for image in images])
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch

    def _one(self, image: np.ndarray) -> torch.Tensor:
        pixels = self._upload(crop_top(image, self.geometry))
        chw = pixels.permute(2, 0, 1)[None].float()
        resized = F.interpolate(
            chw, size=(self.geometry.img_h, self.geometry.img_w), mode="bicubic", align_corners=False
        )
        return resized.round_().clamp_(0, 255).div_(255)

    def _upload(self, image: np.ndarray) -> torch.Tensor:
        source = torch.from_numpy(image)
        if not self._pinned:
            return source.to(self.device)
        if self._host is None or self._host.shape != source.shape:
            self._host = torch.empty(source.shape, dtype=torch.uint8, pin_memory=True)
        elif self._upload_done is not None:
            # The previous asynchronous copy may still read the pinned buffer we are about to overwrite.
            self._upload_done.synchronize()
        self._host.copy_(source)
        pixels = self._host.to(self.device, non_blocking=True)
        self._upload_done = torch.cuda.Event()
        self._upload_done.record(torch.cuda.current_stream(self.device))
        return pixels
