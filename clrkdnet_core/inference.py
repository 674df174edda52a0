"""LaneDetector: BGR camera images in, lanes in the images' pixels out.

    detector = LaneDetector.from_preset("clrkdnet_resnet18_culane", "culane_r18.pth")
    lanes = detector.detect(cv2.imread("frame.jpg"))

Images of any size work: the preset's crop ratio is applied to each image's height and the lanes are mapped
back to that image. On CUDA the images are cropped and resized on the GPU (``gpu_preprocess``) and the lane
NMS runs as Triton kernels (``postprocess.nms_triton``), so nothing waits for the device before the final
lanes; elsewhere OpenCV and the vectorised PyTorch NMS do the same work.
"""

import dataclasses
import logging
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import numpy as np
import torch

from clrkdnet_core.backend_choice import BackendChoice, choose_backend
from clrkdnet_core.backend_options import AUTO
from clrkdnet_core.backends import InferenceBackend, create_backend
from clrkdnet_core.calibration import CalibrationSource
from clrkdnet_core.checkpoint import load_checkpoint
from clrkdnet_core.config import Preset, TestConfig, load_preset
from clrkdnet_core.errors import InputError
from clrkdnet_core.geometry import ImageGeometry
from clrkdnet_core.gpu_preprocess import DevicePreprocessor
from clrkdnet_core.image import check_image
from clrkdnet_core.lane import Lane
from clrkdnet_core.models import build_model
from clrkdnet_core.postprocess.decode import BatchedNms, decode_predictions
from clrkdnet_core.postprocess.nms import lane_nms_batched
from clrkdnet_core.preprocess import preprocess_batch
from clrkdnet_core.weights import resolve_weights

logger = logging.getLogger(__name__)


def resolve_device(device: str | torch.device) -> torch.device:
    """``auto`` -> cuda if available, else cpu; a CUDA device that is not there -> cpu with a warning."""
    spec = str(device).strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu":
        return torch.device("cpu")
    kind, _, index = spec.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise InputError(f"invalid device {str(device)!r}; use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        logger.warning("device %s requested but CUDA is not available; running on the CPU", spec)
        return torch.device("cpu")
    if index and int(index) >= torch.cuda.device_count():
        logger.warning(
            "device %s requested but only %d CUDA device(s) exist; running on the CPU",
            spec,
            torch.cuda.device_count(),
        )
        return torch.device("cpu")
    return torch.device(spec)


def select_nms(device: torch.device) -> BatchedNms:
    """The Triton lane NMS on CUDA when it compiles there and agrees with the PyTorch NMS, else the latter."""
    if device.type != "cuda":
        return lane_nms_batched
    try:
        from clrkdnet_core.postprocess import nms_triton

        nms_triton.check_on(device)
    except Exception as exc:  # any failure of the optional fast path means the portable one
        logger.warning("Triton lane NMS unavailable on %s (%s); using the PyTorch lane NMS", device, exc)
        return lane_nms_batched
    return nms_triton.lane_nms_batched


def select_preprocessor(
    geometry: ImageGeometry, device: torch.device
) -> Callable[[Sequence[np.ndarray]], torch.Tensor]:
    """Crop and resize on the GPU for CUDA devices (only raw pixels cross the bus), with OpenCV elsewhere."""
    if device.type == "cuda":
        return DevicePreprocessor(geometry, device)
    return partial(preprocess_batch, geometry=geometry, device=device)


class LaneDetector:
    """Lane detection with one preset's network behind an inference backend.

    Attributes:
        preset: the model configuration.
        device: where the network runs.
        backend: the backend's name (``torch``, ``onnxruntime``, ``openvino``, ``tensorrt``).
        precision: what the network runs in (``fp32``, ``fp16``, ``bf16``, ``int8``).
        choice: the backend and precision with why they were chosen (``auto``) or "as set".
        test: the decoding settings, the preset's ``test`` until :meth:`set_thresholds` changes them;
            ``conf_threshold``, ``nms_thres`` and ``max_lanes`` read its fields.
        preprocess: images -> network input batch on ``device`` (see :func:`select_preprocessor`).
        nms: the batched lane NMS used by decoding (see :func:`select_nms`).
    """

    def __init__(self, preset: Preset, runner: InferenceBackend, choice: BackendChoice | None = None) -> None:
        self.preset = preset
        self.runner = runner
        self.choice = choice or BackendChoice(runner.name, runner.precision, "as set")
        self.device = runner.device
        self.backend = runner.name
        self.precision = runner.precision
        self.preprocess = select_preprocessor(preset.geometry, self.device)
        self.nms = select_nms(self.device)
        self.test: TestConfig = preset.test

    @classmethod
    def from_preset(
        cls,
        preset: str | Path | Preset,
        weights: str | Path | None,
        device: str | torch.device = "auto",
        backend: str = AUTO,
        precision: str = AUTO,
        calibration: CalibrationSource | None = None,
        **backend_options,
    ) -> "LaneDetector":
        """Build the network of ``preset``, load ``weights`` and start ``backend`` on ``device``.

            detector = LaneDetector.from_preset(preset, weights, device="cpu", backend="openvino",
                                                precision="int8", calibration="frames/")

        Args:
            preset: preset name, YAML path or Preset.
            weights: checkpoint file (official or ours), or an official file name in the weights cache
                (:mod:`clrkdnet_core.weights`); None runs randomly initialised weights (for tests).
            device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``; a CUDA device that is not there means the CPU.
            backend: inference backend name (``torch``, ``onnxruntime``, ``openvino``, ``tensorrt``) or
                ``auto`` (default): the fastest installed one for the device
                (:mod:`clrkdnet_core.backend_choice`; the choice and why are logged at INFO);
                ``backend_options`` go to its constructor (e.g. ``threads=2``, ``force_int8=True``).
            precision: ``auto`` (default: the backend's best for the device, never int8); ``fp32``; ``fp16``
                (torch, tensorrt on CUDA; onnxruntime); ``bf16`` (openvino on CPUs with bf16 instructions);
                ``int8`` (onnxruntime, openvino on the CPU; needs ``calibration``). Exact fp32, the official
                code's results: ``backend="torch", precision="fp32"``.
            calibration: int8 calibration images: a folder or dataset root, or a sequence of BGR images
                (see :func:`clrkdnet_core.calibration.load_calibration`).
        """
        preset = load_preset(preset)
        model = build_model(preset)
        if weights is None:
            logger.warning("no weights given for %s: the network is randomly initialised", preset.name)
        else:
            load_checkpoint(model, resolve_weights(weights))
        device = resolve_device(device)
        choice = choose_backend(device.type, backend, precision)
        if choice.precision == "int8":
            backend_options["calibration"] = calibration
        elif calibration is not None:
            logger.warning("calibration images are only used by precision int8; ignoring them")
        if AUTO in (backend, precision):
            logger.info("backend auto: %s", choice.reason)
        runner = create_backend(
            choice.backend, model.eval(), device, precision=choice.precision, **backend_options
        )
        return cls(preset, runner, choice)

    def set_thresholds(
        self,
        conf_threshold: float | None = None,
        nms_thres: float | None = None,
        max_lanes: int | None = None,
    ) -> None:
        """Change the decoding thresholds; None leaves a value unchanged."""
        changes: dict[str, float | int] = {}
        if conf_threshold is not None:
            if not 0.0 <= conf_threshold <= 1.0:
                raise InputError(f"conf_threshold must be in [0, 1], got {conf_threshold}")
            changes["conf_threshold"] = float(conf_threshold)
        if nms_thres is not None:
            if nms_thres < 0:
                raise InputError(f"nms_thres must be >= 0 (pixels of the 800-wide input), got {nms_thres}")
            changes["nms_thres"] = float(nms_thres)
        if max_lanes is not None:
            if int(max_lanes) != max_lanes or max_lanes < 1:
                raise InputError(f"max_lanes must be a positive integer, got {max_lanes}")
            changes["max_lanes"] = int(max_lanes)
        self.test = dataclasses.replace(self.test, **changes)

    @property
    def conf_threshold(self) -> float:
        return self.test.conf_threshold

    @property
    def nms_thres(self) -> float:
        return self.test.nms_thres

    @property
    def max_lanes(self) -> int:
        return self.test.max_lanes

    def detect(self, image: np.ndarray, original_size: tuple[int, int] | None = None) -> list[Lane]:
        """Lanes of one HxWx3 uint8 BGR image, by descending score.

        Args:
            image: the camera image, or a reduced copy of it (e.g. a JPEG decoded at 1/2 scale, see
                :func:`reduced_decode_scale`).
            original_size: (width, height) of the camera image ``image`` was reduced from; the lanes are in
                its pixels. None: ``image`` is the camera image.
        """
        return self.detect_batch([image], None if original_size is None else [original_size])[0]

    def detect_batch(
        self, images: Sequence[np.ndarray], original_sizes: Sequence[tuple[int, int]] | None = None
    ) -> list[list[Lane]]:
        """Lanes of several images (sizes may differ) with one network call; ``original_sizes`` as in
        :meth:`detect`, one per image."""
        if len(images) == 0:
            return []
        sizes = [check_image(image).shape[1::-1] for image in images]
        if original_sizes is not None:
            if len(original_sizes) != len(images):
                raise InputError(f"got {len(original_sizes)} original sizes for {len(images)} images")
            sizes = [(int(width), int(height)) for width, height in original_sizes]
        predictions = self.runner(self.preprocess(images))
        # A reduced image keeps the camera image's crop ratio (the preprocess cuts the same fraction of its
        # rows), so the network input covers the same region and the lanes map straight to the camera image.
        geometries = [self.preset.geometry.scaled_to(width, height) for width, height in sizes]
        return decode_predictions(predictions, geometries, self.test, self.nms)

    def reduced_decode_scale(self, width: int, height: int) -> int:
        """The largest JPEG reduction (1, 2, 4 or 8) that keeps the network's input at full detail for a
        ``width`` x ``height`` camera image: its cropped region still at least as large as the input in both
        directions after reduction."""
        geometry = self.preset.geometry.scaled_to(width, height)
        crop_w, crop_h = width, height - geometry.cut_height
        for scale in (8, 4, 2):
            if crop_w >= scale * geometry.img_w and crop_h >= scale * geometry.img_h:
                return scale
        return 1
