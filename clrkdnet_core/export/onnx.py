"""ONNX export of the network up to its (B, 192, 78) prediction tensor, checked with onnxruntime.

Only the eval-mode forward is traced: no segmentation decoder, no distillation attention maps, and no
threshold/NMS/decoding (those stay in :mod:`clrkdnet_core.postprocess`, which keeps the graph free of custom
operators). ``grid_sample`` needs opset 16 or newer.
"""

import copy
import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from clrkdnet_core.errors import BackendError, InputError
from clrkdnet_core.lane_format import NUM_PRIORS, ROW_WIDTH

INPUT_NAME = "images"
OUTPUT_NAME = "predictions"
PREDICTION_SHAPE = (NUM_PRIORS, ROW_WIDTH)  # per image: one lane row (lane_format) per prior
MIN_OPSET = 16
DEFAULT_OPSET = 17
# Largest |onnxruntime - PyTorch| accepted on the (B,192,78) tensor (logits, normalised coordinates, lengths).
FP32_TOLERANCE = 1e-3
FP16_TOLERANCE = 5e-2


class ExportMismatchError(RuntimeError):
    """The exported graph does not reproduce the PyTorch network (a bug, not a user error)."""


@dataclass(frozen=True)
class ExportResult:
    """Where the model went and how closely onnxruntime reproduced PyTorch on the check input."""

    path: Path
    max_abs_diff: float | None
    tolerance: float


def default_cache_dir() -> Path:
    """Cache of exported models and engines: ``$CLRKDNET_CACHE_DIR`` or ``~/.cache/clrkdnet_ros``."""
    return Path(os.environ.get("CLRKDNET_CACHE_DIR", Path.home() / ".cache" / "clrkdnet_ros"))


def model_digest(model: nn.Module) -> str:
    """sha256 of the network's state_dict (names, shapes, dtypes and values): the key of cached exports."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tuple(value.shape)}:{value.dtype};".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def network_input_size(model: nn.Module) -> tuple[int, int]:
    """(height, width) of the input of ``model``'s preset (320 x 800 for CULane, 160 x 400 for the demo)."""
    geometry = model.preset.geometry
    return geometry.img_h, geometry.img_w


def onnx_input_size(path: str | os.PathLike) -> tuple[int, int]:
    """(height, width) of an exported model's input, read from its graph."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    dims = graph.input[0].type.tensor_type.shape.dim
    height, width = (dim.dim_value for dim in dims[2:])
    if height <= 0 or width <= 0:
        raise InputError(f"{path}: the input's height and width must be fixed, got {tuple(dims)}")
    return height, width


def check_input(batch: torch.Tensor, input_size: tuple[int, int]) -> None:
    """Raise InputError unless ``batch`` is a (B, 3, *input_size) floating tensor."""
    height, width = input_size
    if batch.ndim != 4 or tuple(batch.shape[1:]) != (3, height, width) or not batch.is_floating_point():
        raise InputError(
            f"expected a float tensor of shape (B, 3, {height}, {width}), "
            f"got {tuple(batch.shape)} {batch.dtype}"
        )


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    *,
    batch_size: int = 1,
    dynamic_batch: bool = False,
    fp16: bool = False,
    opset: int = DEFAULT_OPSET,
    verify: bool = True,
    input_size: tuple[int, int] | None = None,
) -> ExportResult:
    """Export ``model`` (eval mode) to ``path`` and check it with onnxruntime.

    Args:
        model: the network; it is exported as a copy on CPU, ``model`` itself is not changed.
        path: output ``.onnx`` file (written atomically).
        batch_size: batch dimension of the graph, and of the check input.
        dynamic_batch: make the batch dimension symbolic (``batch``).
        fp16: export a strongly typed float16 graph (float16 input and output), as TensorRT 11 needs for FP16.
        opset: ONNX opset, at least 16 (GridSample).
        verify: run the graph with onnxruntime on a fixed random input and compare with the float32 PyTorch
            output; raises :class:`ExportMismatchError` when the largest difference exceeds the tolerance.
        input_size: (height, width) of the network input; default: the one of ``model``'s preset.
    """
    if opset < MIN_OPSET:
        raise InputError(f"opset {opset} is too old: grid_sample needs opset {MIN_OPSET} or newer")
    if batch_size < 1:
        raise InputError(f"batch size must be at least 1, got {batch_size}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    reference = _cpu_eval_copy(model, torch.float32)
    exported = _cpu_eval_copy(model, torch.float16) if fp16 else reference
    example = _check_input(batch_size, input_size or network_input_size(model))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # The TorchScript exporter handles every op of these networks without onnxscript; torch warns that it is
    # deprecated in favour of the dynamo exporter, which is not needed here.
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        # The input shape check of LaneNet.forward is a Python condition the trace cannot (and need not) keep.
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(
            exported,
            (example.to(torch.float16) if fp16 else example,),
            str(tmp),
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None,
            do_constant_folding=True,
        )
    _declare_output_shape(tmp, batch_size, dynamic_batch)
    os.replace(tmp, path)
    tolerance = FP16_TOLERANCE if fp16 else FP32_TOLERANCE
    if not verify:
        return ExportResult(path, None, tolerance)
    with torch.no_grad():
        expected = reference(example).float().numpy()
    diff = max_abs_diff_onnxruntime(path, example.numpy(), expected)
    if not diff <= tolerance:
        raise ExportMismatchError(
            f"{path}: onnxruntime differs from PyTorch by {diff:.3g} (tolerance {tolerance:g})"
        )
    return ExportResult(path, diff, tolerance)


def max_abs_diff_onnxruntime(path: str | os.PathLike, images: np.ndarray, expected: np.ndarray) -> float:
    """Largest absolute difference between the ONNX model's output on ``images`` and ``expected``."""
    ort = import_onnxruntime()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed_type = np.float16 if session.get_inputs()[0].type == "tensor(float16)" else np.float32
    (output,) = session.run([OUTPUT_NAME], {INPUT_NAME: images.astype(feed_type)})
    return float(np.abs(output.astype(np.float32) - expected).max())


def import_onnxruntime():
    """The onnxruntime module, or a BackendError saying how to install it."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise BackendError(
            "onnxruntime is not installed: pip install onnxruntime (or onnxruntime-gpu)"
        ) from exc
    return onnxruntime


def cached_onnx(
    model: nn.Module,
    cache_dir: str | os.PathLike | None = None,
    *,
    fp16: bool = False,
    opset: int = DEFAULT_OPSET,
) -> Path:
    """Path of a dynamic-batch ONNX export of ``model``, exported (and verified) on first use.

    The file name carries the digest of the weights, the input size and the export options, so changed
    weights or another preset's input size never reuse a stale export.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    precision = "fp16" if fp16 else "fp32"
    height, width = network_input_size(model)
    path = cache_dir / f"model-{model_digest(model)[:16]}-{height}x{width}-{precision}-opset{opset}.onnx"
    if not path.is_file():
        export_onnx(model, path, dynamic_batch=True, fp16=fp16, opset=opset)
    return path


def load_network(preset: str, weights: str | os.PathLike) -> nn.Module:
    """The preset's network with ``weights`` loaded strictly, in eval mode on CPU."""
    from clrkdnet_core.checkpoint import load_checkpoint
    from clrkdnet_core.models import build_model

    model = build_model(preset)
    load_checkpoint(model, weights)
    return model.eval()


def _declare_output_shape(path: Path, batch_size: int, dynamic_batch: bool) -> None:
    # The tracer leaves the output dims symbolic (they come out of a Concat); a declared (B, 192, 78) lets
    # consumers (TensorRT, onnxruntime I/O binding, users) rely on them without shape inference.
    import onnx

    graph = onnx.load(str(path))
    dims = graph.graph.output[0].type.tensor_type.shape.dim
    for dim, size in zip(dims, (batch_size, *PREDICTION_SHAPE), strict=True):
        dim.Clear()
        if dim is dims[0] and dynamic_batch:
            dim.dim_param = "batch"
        else:
            dim.dim_value = size
    onnx.save(graph, str(path))


def _cpu_eval_copy(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    return copy.deepcopy(model).to(device="cpu", dtype=dtype).eval()


def _check_input(batch_size: int, input_size: tuple[int, int]) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.rand((batch_size, 3, *input_size), generator=generator)
