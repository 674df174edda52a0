"""INT8 post-training static quantization of the backbone and neck, with an accuracy gate against fp32.

The exported fp32 graph gets QuantizeLinear/DequantizeLinear pairs (QDQ, per-channel int8 weights, uint8
activations calibrated on camera images) around the convolutions and residual additions of the backbone and
the neck only, except the stem convolution that reads the image. The head (its convolutions and FC layers,
ROI gather, GridSample), the score sigmoid and the decoding stay fp32: quantized detection heads are where
INT8 usually breaks. onnxruntime and OpenVINO both run the same QDQ graph as int8 kernels.

The accuracy gate compares the int8 model's lanes with the fp32 model's on the held-out calibration images:
share of images with the same lane count, mean distance of matched lanes' points, and the CULane F1 (IoU 0.5)
of int8 lanes scored against fp32 lanes as ground truth. Below :data:`MIN_AGREEMENT_F1` the model is refused
(``force_int8`` turns the refusal into a warning). The result is stored in the quantized model's metadata, so
a cached model is judged without re-running the gate.

Quantized models are cached under a name hashing the fp32 ONNX file, the calibration set, the input size, the
runtime and its version and the CPU's instruction-set flags (:mod:`clrkdnet_core.export.cache`).
"""

import contextlib
import hashlib
import io
import json
import logging
import os
import platform
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from clrkdnet_core.calibration import CalibrationSet, CalibrationSource, load_calibration
from clrkdnet_core.config import Preset
from clrkdnet_core.errors import BackendError
from clrkdnet_core.export.cache import load_or_build
from clrkdnet_core.hashing import file_sha256
from clrkdnet_core.metrics.culane import culane_counts, summarize_counts
from clrkdnet_core.preprocess import preprocess_batch

LOG = logging.getLogger(__name__)
QUANTIZED_MODULES = ("/backbone/", "/neck/")  # ONNX node-name prefixes the tracer gives LaneNet's children
QUANTIZED_OPS = ("Conv", "Add")
# Measured with the shipped model on 60 held-out generated scenes (32 calibration images, OpenVINO): all three
# agree with fp32 on every lane count (F1@50 1.0); mean point distance Percentile 0.30 px, MinMax and Entropy
# 0.40 px. Percentile (99.999) clips the rare activation outliers that stretch MinMax's ranges.
CALIBRATION_METHOD = "Percentile"
# What gets quantized and how; change it with the recipe so that cached models are rebuilt.
RECIPE = "2: pre-processed graph, QDQ on backbone and neck Conv and Add except the stem"
MIN_AGREEMENT_F1 = 0.95
METADATA_KEY = "clrkdnet_int8_agreement"
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16")

Runner = Callable[[np.ndarray], np.ndarray]  # (B, 3, H, W) float32 -> (B, 192, 78) float32


class AccuracyGateError(BackendError):
    """The int8 model's lanes disagree with the fp32 model's beyond the documented threshold."""


@dataclass(frozen=True)
class Agreement:
    """How the int8 model's lanes compare with the fp32 model's on the held-out images."""

    images: int
    same_lane_count: float  # share of images where both find as many lanes
    mean_point_distance_px: float  # mean |x_int8 - x_fp32| over the rows of matched lanes, image pixels
    f1: float  # CULane F1@50 of int8 lanes against fp32 lanes

    @property
    def passes(self) -> bool:
        return self.f1 >= MIN_AGREEMENT_F1

    def summary(self) -> str:
        return (
            f"int8 against fp32 on {self.images} held-out images: F1@50 {self.f1:.4f}, same lane count on "
            f"{self.same_lane_count:.0%}, mean point distance {self.mean_point_distance_px:.2f} px"
        )


def cpu_flags() -> tuple[str, ...]:
    """The instruction-set flags (of :data:`CPU_FLAGS`) this CPU reports: they pick the runtime's kernels."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return (platform.processor(),)
    reported = set(next((line for line in text.splitlines() if line.startswith("flags")), "").split())
    return tuple(flag for flag in CPU_FLAGS if flag in reported)


def quantized_model(
    onnx_path: str | os.PathLike,
    calibration: CalibrationSource | None,
    preset: Preset,
    runtime: str,
    open_runner: Callable[[str], Runner],
    *,
    cache_dir: str | os.PathLike,
    force_int8: bool = False,
) -> tuple[Path, Agreement]:
    """The cached int8 QDQ model of ``onnx_path`` for ``runtime`` (built and gated on first use).

    Args:
        onnx_path: the fp32 export (dynamic batch).
        calibration: the calibration images (see :func:`~clrkdnet_core.calibration.load_calibration`).
        preset: the network's preset (pre-processing geometry, decoding thresholds of the gate).
        runtime: ``name version`` of the runtime that will run it (part of the cache key).
        open_runner: model path -> a runner in that runtime (used by the gate on fp32 and int8).
        cache_dir: cache of quantized models.
        force_int8: warn instead of refusing when the gate fails.

    Raises:
        AccuracyGateError: the agreement is below :data:`MIN_AGREEMENT_F1` and ``force_int8`` is False.
    """
    calibration = load_calibration(calibration)
    height, width = preset.geometry.img_h, preset.geometry.img_w
    key = {
        "onnx_sha256": file_sha256(onnx_path),
        "calibration_sha256": calibration.digest,
        "input_size": [height, width],
        "runtime": runtime,
        "quantizer": _quantizer_version(),
        "cpu_flags": list(cpu_flags()),
        "method": CALIBRATION_METHOD,
        "recipe": RECIPE,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    path = Path(cache_dir) / f"int8-{runtime.split()[0]}-{height}x{width}-{digest}.onnx"

    def build() -> bytes:
        return _quantize_and_gate(Path(onnx_path), calibration, preset, open_runner)

    agreement = load_or_build(path, build, _read_agreement, "INT8 model")
    LOG.info("%s (%s)", agreement.summary(), path.name)
    if not agreement.passes:
        message = f"{agreement.summary()}: F1@50 below {MIN_AGREEMENT_F1}"
        if not force_int8:
            raise AccuracyGateError(
                f"{message}; refusing int8 (use fp32, more or more representative calibration images, or "
                "force_int8=True / --force-int8 to use it anyway)"
            )
        LOG.warning("%s; used anyway (force_int8)", message)
    return path, agreement


def quantize_qdq(onnx_path: Path, out_path: Path, inputs: list[np.ndarray]) -> None:
    """Write the QDQ int8 model of ``onnx_path`` calibrated on ``inputs`` ((1, 3, H, W) network inputs)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="clrkdnet_qdq_") as tmp:
        # Shapes inferred and the graph simplified first: without it onnxruntime ran the int8 CULane student
        # slower than fp32 (210 against 127 ms); with it faster (135 against 227 ms, a busier moment).
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(onnx_path), str(prepared), skip_symbolic_shape=True)
        _quantize_static(prepared, out_path, inputs)


def _quantize_static(onnx_path: Path, out_path: Path, inputs: list[np.ndarray]) -> None:
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    graph = onnx.load(str(onnx_path)).graph
    input_name = graph.input[0].name
    # The stem convolution reads the image itself: OpenVINO's int8 kernels got its 3-channel uint8 input
    # wrong (lane F1 0.6 against fp32 with only that layer quantized), and it is a small share of the time.
    nodes = [
        node.name
        for node in graph.node
        if node.op_type in QUANTIZED_OPS
        and node.name.startswith(QUANTIZED_MODULES)
        and input_name not in node.input
    ]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(inputs)

        def get_next(self) -> dict | None:
            batch = next(self.batches, None)
            return None if batch is None else {input_name: batch}

    # The histogram calibrators print their progress: keep a CLI's or node's output to its own lines.
    with contextlib.redirect_stdout(io.StringIO()):
        quantize_static(
            str(onnx_path),
            str(out_path),
            Reader(),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(QUANTIZED_OPS),
            nodes_to_quantize=nodes,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=getattr(CalibrationMethod, CALIBRATION_METHOD),
        )


def lane_agreement(fp32: Runner, int8: Runner, calibration: CalibrationSet, preset: Preset) -> Agreement:
    """Compare the lanes of ``int8`` with those of ``fp32`` on the held-out images (preset thresholds)."""
    from clrkdnet_core.postprocess.decode import decode_predictions

    same = tp = fp = fn = 0
    distances: list[float] = []
    for load in calibration.held_out:
        image = load()
        height, width = image.shape[:2]
        batch = preprocess_batch([image], preset.geometry).numpy()
        geometry = [preset.geometry.scaled_to(width, height)]
        lanes = [
            decode_predictions(torch.from_numpy(run(batch)), geometry, preset.test)[0] for run in (fp32, int8)
        ]
        reference, quantized = ([lane.points for lane in found] for found in lanes)
        same += len(reference) == len(quantized)
        counts = culane_counts(quantized, reference, rows=height, cols=width)
        tp, fp, fn = tp + counts[0], fp + counts[1], fn + counts[2]
        distances += _matched_distances(reference, quantized)
    images = len(calibration.held_out)
    f1 = summarize_counts(tp, fp, fn)["f1"] if tp + fp + fn else 1.0  # no lanes in either: full agreement
    return Agreement(images, same / images, float(np.mean(distances)) if distances else 0.0, float(f1))


def _matched_distances(reference: list[np.ndarray], quantized: list[np.ndarray]) -> list[float]:
    # Each fp32 lane against the int8 lane closest to it over the rows both cover (decoding samples the same
    # rows for every lane of an image, so equal y values line up).
    distances = []
    for lane in reference:
        best = None
        for other in quantized:
            common, i, j = np.intersect1d(lane[:, 1], other[:, 1], return_indices=True)
            if len(common) >= 2:
                distance = float(np.abs(lane[i, 0] - other[j, 0]).mean())
                best = distance if best is None else min(best, distance)
        if best is not None:
            distances.append(best)
    return distances


def _quantize_and_gate(
    onnx_path: Path, calibration: CalibrationSet, preset: Preset, open_runner: Callable[[str], Runner]
) -> bytes:
    import onnx

    LOG.warning(
        "quantizing %s to int8 on %d images of %s",
        onnx_path.name,
        len(calibration.calibration),
        calibration.description,
    )
    with tempfile.TemporaryDirectory(prefix="clrkdnet_int8_") as tmp:
        out = Path(tmp) / "int8.onnx"
        quantize_qdq(onnx_path, out, list(calibration.network_inputs(preset.geometry)))
        agreement = lane_agreement(open_runner(str(onnx_path)), open_runner(str(out)), calibration, preset)
        model = onnx.load(str(out))
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(asdict(agreement))
    return model.SerializeToString()


def _read_agreement(data: bytes) -> Agreement:
    import onnx

    model = onnx.load_model_from_string(data)
    onnx.checker.check_model(model)
    metadata = {entry.key: entry.value for entry in model.metadata_props}
    return Agreement(**json.loads(metadata[METADATA_KEY]))


def _quantizer_version() -> str:
    import onnxruntime

    return onnxruntime.__version__
