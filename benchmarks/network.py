"""Network and image-to-lanes benchmarks: CLRKDNet students against their CLRNet teachers, and our pipeline
against the reference's way of running it.

Each (device, backend, model family, batch size) is one interleaved measurement of every model in three modes:

- ``network``: the (B, 3, 320, 800) all-ones tensor through the network alone;
- ``image -> lanes``: a generated road image (1640 x 590) pre-processed, run and decoded to lanes;
- ``all-ones -> lanes``: the reference ``sample_speed.py`` protocol, an all-ones input tensor through the
  network and the lane decoding (batch 1 only, like that script).

Weights are random unless given (``--weights PRESET=PATH``): latency of the network does not depend on them.
"""

import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks import Settings, Timing, measure_interleaved, timing_table
from benchmarks.postprocess import reference_lanes_with_splines
from clrkdnet_core.backends import create_backend
from clrkdnet_core.checkpoint import load_checkpoint
from clrkdnet_core.errors import BackendError
from clrkdnet_core.export.onnx import default_cache_dir
from clrkdnet_core.image import read_image
from clrkdnet_core.models import build_model
from clrkdnet_core.postprocess.decode import decode_predictions
from clrkdnet_core.preprocess import preprocess_batch

# family -> (student, teacher it is compared with first, other teachers)
FAMILIES = {
    "ResNet-18": ("clrkdnet_resnet18_culane", "clrnet_resnet18_culane", ("clrnet_resnet101_culane",)),
    "DLA-34": ("clrkdnet_dla34_culane", "clrnet_dla34_culane", ()),
}
MODES = {1: ("network", "image -> lanes", "all-ones -> lanes"), 8: ("network", "image -> lanes")}
GOAL_STUDENT_RATIO = 0.8
GOAL_REFERENCE_SPEEDUP = 1.3
# The precision sections: every CPU path against the reference way, and F1 of each precision.
CPU_PATHS = (
    ("torch", "fp32"),
    ("onnxruntime", "fp32"),
    ("onnxruntime", "int8"),
    ("openvino", "fp32"),
    ("openvino", "bf16"),
    ("openvino", "int8"),
)
PRECISION_PRESETS = ("clrkdnet_resnet18_culane", "clrkdnet_dla34_culane", "clrnet_resnet18_culane")
CALIBRATION_SCENES = 40
GOAL_CPU_SPEEDUP = 3.0
GOAL_F1_POINTS = 0.5
SHIPPED_PRESET = Path(__file__).resolve().parents[1] / "models" / "clrkdnet_resnet18_synthetic.yaml"
SHIPPED_WEIGHTS = SHIPPED_PRESET.with_suffix(".pth")


@dataclass
class ModelStore:
    """Builds each preset's network once (seeded, so random weights and cached exports repeat across runs)."""

    weights: dict[str, str] = field(default_factory=dict)
    _models: dict[str, nn.Module] = field(default_factory=dict)

    def get(self, preset: str) -> nn.Module:
        if preset not in self._models:
            torch.manual_seed(0)
            model = build_model(preset)
            if preset in self.weights:
                load_checkpoint(model, self.weights[preset])
            self._models[preset] = model.eval()
        return self._models[preset]


def road_image() -> np.ndarray:
    """A generated 1640 x 590 CULane-like road image (fixed seed)."""
    from clrkdnet_core.data.synthetic import render_scene

    image, _ = render_scene(np.random.default_rng(3), 1640, 590)
    return image


def available_backends(device: torch.device) -> list[str]:
    """Backends that can run on ``device`` here (torch always; the others when installed)."""
    names = ["torch"]
    try:
        import onnxruntime

        if device.type == "cpu" or "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            names.append("onnxruntime")
    except ImportError:
        pass
    if device.type == "cuda":
        try:
            import tensorrt  # noqa: F401

            names.append("tensorrt")
        except ImportError:
            pass
    return names


def comparison_section(
    settings: Settings, store: ModelStore, devices: list[torch.device]
) -> tuple[list[str], dict]:
    """Markdown of every (device, backend, family, batch) comparison, and the p50s the goals are read from."""
    image = road_image()
    lines: list[str] = []
    p50: dict = {}
    for device in devices:
        sync = torch.cuda.synchronize if device.type == "cuda" else None
        for backend_name in available_backends(device):
            lines += [f"### {backend_name} on {_device_label(device)}", ""]
            for family, (student, teacher, others) in FAMILIES.items():
                presets = (student, teacher, *others)
                try:
                    runners = {p: _backend_for(backend_name, store.get(p), device) for p in presets}
                except BackendError as exc:
                    lines += [f"{family}: backend not available ({exc})", ""]
                    continue
                for batch in (1, 8):
                    timings = _measure_family(runners, store, image, device, batch, settings, sync)
                    for mode in MODES[batch]:
                        rows = [(f"{p} ({mode})", timings[(p, mode)]) for p in presets]
                        lines += [f"**{family}, {mode}, batch {batch}**", ""]
                        lines += timing_table(rows, baseline=f"{teacher} ({mode})")
                        lines.append("")
                        for p in presets:
                            p50[(device.type, backend_name, p, mode, batch)] = timings[(p, mode)].p50
    return lines, p50


def _backend_for(name: str, model: nn.Module, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    if name == "torch":
        return _EagerNetwork(model, device)
    return create_backend(name, model, device)


class _EagerNetwork:
    """The torch backend's behaviour (inference mode, eval) without moving the shared CPU model."""

    def __init__(self, model: nn.Module, device: torch.device) -> None:
        self.model = model if device.type == "cpu" else _copy_to(model, device)
        self.device = device

    @torch.inference_mode()
    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model(batch.to(self.device)).float()


def _copy_to(model: nn.Module, device: torch.device) -> nn.Module:
    import copy

    return copy.deepcopy(model).to(device).eval()


def _measure_family(
    runners: dict[str, Callable[[torch.Tensor], torch.Tensor]],
    store: ModelStore,
    image: np.ndarray,
    device: torch.device,
    batch: int,
    settings: Settings,
    sync: Callable[[], None] | None,
) -> dict[tuple[str, str], Timing]:
    ones = torch.ones((batch, 3, 320, 800), device=device)
    images = [image] * batch
    contenders = {}
    for preset, run in runners.items():
        model = store.get(preset)
        geometry, test = model.preset.geometry, model.preset.test

        def decode(pred, geometry=geometry, test=test):
            return decode_predictions(pred, geometry, test)

        contenders[(preset, "network")] = lambda run=run: run(ones)
        contenders[(preset, "image -> lanes")] = lambda run=run, decode=decode, geometry=geometry: decode(
            run(preprocess_batch(images, geometry, device))
        )
        if "all-ones -> lanes" in MODES[batch]:
            contenders[(preset, "all-ones -> lanes")] = lambda run=run, decode=decode: decode(run(ones))
    timings = measure_interleaved(
        contenders,
        settings.iterations[batch],
        settings.warmup,
        batch,
        sync=sync,
        description=f"{next(iter(runners))} b{batch} {device.type}",
    )
    return timings


def reference_section(settings: Settings, store: ModelStore) -> tuple[list[str], float]:
    """Our CPU paths against the reference's way, side by side, on the generated road image (batch 1).

    The reference way: eager float32 PyTorch under ``no_grad``, the student backbone's distillation attention
    maps computed on every forward (the reference does, even at test time), decoding one lane at a time in
    Python with a spline object per lane.
    """
    preset = FAMILIES["ResNet-18"][0]
    model = store.get(preset)
    geometry, test = model.preset.geometry, model.preset.test
    images = [road_image()]
    cpu = torch.device("cpu")

    runners = {name: _backend_for(name, model, cpu) for name in available_backends(cpu)}
    # The product's torch backend: BatchNorm folded into the convolutions, channels-last (faster with oneDNN).
    runners["torch backend (BN folded, channels-last)"] = create_backend("torch", _copy_to(model, cpu), cpu)
    contenders = {"reference way": lambda: reference_way(model, images)}
    for name, run in runners.items():
        contenders[f"ours: {name}"] = lambda run=run: decode_predictions(
            run(preprocess_batch(images, geometry)), geometry, test
        )
    iterations = settings.iterations[1] * 2
    timings = measure_interleaved(contenders, iterations, settings.warmup, 1, description="reference way")
    fastest = min((t.p50, n) for n, t in timings.items() if n != "reference way")
    speedup = timings["reference way"].p50 / fastest[0]
    lines = [
        f"{preset}, batch 1, generated road image, image -> lanes on CPU.",
        "",
        *timing_table(list(timings.items()), baseline="reference way"),
        "",
        f"Fastest CPU path: {fastest[1]}, {speedup:.2f}x faster than the reference way "
        f"(goal >= {GOAL_REFERENCE_SPEEDUP}x: {'met' if speedup >= GOAL_REFERENCE_SPEEDUP else 'missed'}).",
        "",
    ]
    return lines, speedup


def reference_way(model: nn.Module, images: list[np.ndarray]) -> list:
    """Images -> lanes the reference's way (see :func:`reference_section`)."""
    with torch.no_grad():
        batch = preprocess_batch(images, model.preset.geometry)
        features = model.backbone(batch)
        attention_maps(features)
        pred = model.heads(model.neck(features), return_dict=False)
    return reference_lanes_with_splines(pred, model.preset)


def attention_maps(features: list[torch.Tensor]) -> list[torch.Tensor]:
    """The reference student's per-stage attention maps: channel mean of F^2, L2-normalised per sample."""
    maps = []
    for feature in features:
        attention = feature.pow(2).mean(dim=1, keepdim=True)
        maps.append(F.normalize(attention.flatten(1), dim=1).view_as(attention))
    return maps


def head_profile_section(settings: Settings, store: ModelStore) -> list[str]:
    """Where the time of the students and CLRNet-R18 goes on CPU: backbone, neck, head (batch 1)."""
    ones = torch.ones((1, 3, 320, 800))
    contenders = {}
    for preset in ("clrkdnet_resnet18_culane", "clrnet_resnet18_culane"):
        model = store.get(preset)
        with torch.inference_mode():
            features = model.backbone(ones)
            neck = model.neck(features)

        def run_backbone(model=model):
            with torch.inference_mode():
                model.backbone(ones)

        def run_neck(model=model, features=features):
            with torch.inference_mode():
                model.neck(list(features))

        def run_head(model=model, neck=neck):
            with torch.inference_mode():
                model.heads(list(neck), return_dict=False)

        contenders[f"{preset}: backbone"] = run_backbone
        contenders[f"{preset}: neck"] = run_neck
        contenders[f"{preset}: head"] = run_head
    timings = measure_interleaved(
        contenders, settings.iterations[1], settings.warmup, 1, description="profile"
    )
    return [*timing_table(list(timings.items())), ""]


def _device_label(device: torch.device) -> str:
    if device.type == "cuda":
        return f"CUDA ({torch.cuda.get_device_name(device)})"
    return "CPU"


def calibration_folder() -> Path:
    """Generated CULane-like scenes (seed 11) to calibrate int8 on, made once in the cache directory."""
    from clrkdnet_core.data.synthetic import generate_dataset

    root = default_cache_dir() / f"benchmark_calibration_{CALIBRATION_SCENES}"
    if not (root / ".complete").is_file():
        shutil.rmtree(root, ignore_errors=True)
        generate_dataset(root, "culane", CALIBRATION_SCENES, seed=11, split=(1, 0, 0), progress=False)
        (root / ".complete").touch()
    return root


def precision_section(settings: Settings, store: ModelStore) -> tuple[list[str], str]:
    """Image -> lanes of every CPU backend and precision against the reference way, per model and batch.

    int8 models are calibrated on :func:`calibration_folder` and kept even where random weights fail the
    accuracy gate (timing does not depend on it). Returns the Markdown and the goal line.
    """
    image = road_image()
    lines = [
        f"Generated 1640 x 590 road image; int8 calibrated on {CALIBRATION_SCENES} generated scenes.",
        "",
    ]
    speedup = None
    for preset in PRECISION_PRESETS:
        model = store.get(preset)
        runners, missing = _cpu_paths(model)
        lines += missing
        for batch in (1, 8):
            timings = _precision_timings(model, runners, [image] * batch, settings)
            lines += [f"**{preset}, image -> lanes, batch {batch}**", ""]
            lines += [*timing_table(list(timings.items()), baseline="reference way"), ""]
            if preset == PRECISION_PRESETS[0] and batch == 1:
                fastest = min((t.p50, n) for n, t in timings.items() if n != "reference way")
                speedup = (timings["reference way"].p50 / fastest[0], fastest[1])
    if speedup is None:
        return lines, "no CPU path ran"
    verdict = "met" if speedup[0] >= GOAL_CPU_SPEEDUP else "missed"
    goal = (
        f"CPU, {PRECISION_PRESETS[0]}, image -> lanes, batch 1: fastest path {speedup[1]} is "
        f"{speedup[0]:.2f}x the reference way (goal >= {GOAL_CPU_SPEEDUP}x: {verdict})"
    )
    return [*lines, goal, ""], goal


def _cpu_paths(model: nn.Module) -> tuple[dict[str, Callable[[torch.Tensor], torch.Tensor]], list[str]]:
    """The CPU paths of :data:`CPU_PATHS` that run here, and a line for each one that does not."""
    cpu = torch.device("cpu")
    runners, missing = {}, []
    for backend, precision in CPU_PATHS:
        options = {"calibration": calibration_folder(), "force_int8": True} if precision == "int8" else {}
        try:
            runners[f"{backend} {precision}"] = create_backend(
                backend, _copy_to(model, cpu), cpu, precision=precision, **options
            )
        except BackendError as exc:
            missing.append(f"- {model.preset.name}: {backend} {precision} not available ({exc})")
    return runners, missing


def _precision_timings(
    model: nn.Module,
    runners: dict[str, Callable[[torch.Tensor], torch.Tensor]],
    images: list[np.ndarray],
    settings: Settings,
) -> dict[str, Timing]:
    geometry, test = model.preset.geometry, model.preset.test
    contenders = {"reference way": lambda: reference_way(model, images)}
    for name, run in runners.items():
        contenders[name] = lambda run=run: decode_predictions(
            run(preprocess_batch(images, geometry)), geometry, test
        )
    batch = len(images)
    return measure_interleaved(
        contenders,
        settings.iterations[batch],
        settings.warmup,
        batch,
        description=f"{model.preset.name} b{batch}",
    )


def held_out_scenes(root: Path, count: int) -> list[tuple[np.ndarray, list[np.ndarray]]]:
    """``count`` generated scenes (seed 2026, in no training or calibration set) with their CULane labels."""
    from clrkdnet_core.data.synthetic import generate_dataset
    from clrkdnet_core.metrics.culane import read_lane_file

    root = generate_dataset(root, "culane", count, seed=2026, split=(0, 0, 1), progress=False)
    names = [name.lstrip("/") for name in (root / "list" / "test.txt").read_text().split()]
    return [
        (read_image(root / name), read_lane_file(root / name.replace(".jpg", ".lines.txt"))) for name in names
    ]


def f1_on_scenes(detector, scenes: list[tuple[np.ndarray, list[np.ndarray]]]) -> float:
    """CULane F1@50 of ``detector``'s lanes on labelled scenes."""
    from clrkdnet_core.metrics.culane import culane_counts, summarize_counts

    tp = fp = fn = 0
    for image, labels in scenes:
        counts = culane_counts([lane.points for lane in detector.detect(image)], labels)
        tp, fp, fn = tp + counts[0], fp + counts[1], fn + counts[2]
    return summarize_counts(tp, fp, fn)["f1"]


def precision_f1_section(quick: bool) -> tuple[list[str], str]:
    """F1@50 of each CPU backend and precision with the shipped demo model on held-out generated scenes."""
    from clrkdnet_core.inference import LaneDetector

    count = 30 if quick else 150
    with tempfile.TemporaryDirectory(prefix="clrkdnet_held_out_") as tmp:
        scenes = held_out_scenes(Path(tmp), count)
    calibration = calibration_folder()
    rows = {}
    lines = [f"Shipped model {SHIPPED_WEIGHTS.name}, {count} held-out generated scenes (seed 2026).", ""]
    for backend, precision in CPU_PATHS:
        try:
            detector = LaneDetector.from_preset(
                SHIPPED_PRESET,
                SHIPPED_WEIGHTS,
                "cpu",
                backend,
                precision,
                calibration if precision == "int8" else None,
            )
        except BackendError as exc:
            lines.append(f"- {backend} {precision} not available ({exc})")
            continue
        rows[f"{backend} {precision}"] = f1_on_scenes(detector, scenes)
    reference = rows["torch fp32"]
    lines += ["| backend precision | F1@50 | points vs torch fp32 |", "|---|---|---|"]
    lines += [f"| {name} | {f1:.4f} | {100 * (f1 - reference):+.2f} |" for name, f1 in rows.items()]
    worst = min(((n, f1) for n, f1 in rows.items() if n != "torch fp32"), key=lambda item: item[1])
    loss = 100 * (reference - worst[1])
    verdict = "met" if loss <= GOAL_F1_POINTS else "missed"
    goal = (
        f"Shipped model on held-out generated scenes: largest F1@50 loss against fp32 {loss:.2f} points "
        f"({worst[0]}; goal <= {GOAL_F1_POINTS}: {verdict})"
    )
    return [*lines, "", goal, ""], goal
