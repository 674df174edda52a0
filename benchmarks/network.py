"""Network and image-to-lanes benchmarks: CLRKDNet students against their CLRNet teachers, and our pipeline
against the reference's way of running it.

Each (device, backend, model family, batch size) is one interleaved measurement of every model in three modes:

- ``network``: the (B, 3, 320, 800) all-ones tensor through the network alone;
- ``image -> lanes``: a generated road image (1640 x 590) pre-processed, run and decoded to lanes;
- ``all-ones -> lanes``: the reference ``sample_speed.py`` protocol, an all-ones input tensor through the
  network and the lane decoding (batch 1 only, like that script).

Weights are random unless given (``--weights PRESET=PATH``): latency of the network does not depend on them.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks import Settings, Timing, measure_interleaved, timing_table
from benchmarks.postprocess import reference_lanes_with_splines
from clrkdnet_core.backends import create_backend
from clrkdnet_core.checkpoint import load_checkpoint
from clrkdnet_core.errors import BackendError
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

    def reference_way():
        with torch.no_grad():
            batch = preprocess_batch(images, geometry)
            features = model.backbone(batch)
            attention_maps(features)
            pred = model.heads(model.neck(features), return_dict=False)
        return reference_lanes_with_splines(pred, model.preset)

    runners = {name: _backend_for(name, model, cpu) for name in available_backends(cpu)}
    # The product's torch backend: BatchNorm folded into the convolutions, channels-last (faster with oneDNN).
    runners["torch backend (BN folded, channels-last)"] = create_backend("torch", _copy_to(model, cpu), cpu)
    contenders = {"reference way": reference_way}
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
