"""Model presets: one YAML file per trained configuration, read into frozen dataclasses.

A preset bundles what the official config files of CLRNet / CLRKDNet define for one model: the network
(backbone, neck, refinement stages), the image geometry, the test thresholds and the training recipe.
Presets ship as ``clrkdnet_core/presets/<name>.yaml``; any YAML file of the same layout loads by path.
"""

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from clrkdnet_core.errors import ClrkdnetError, PresetError
from clrkdnet_core.geometry import ImageGeometry
from clrkdnet_core.lane_format import NUM_OFFSETS, NUM_PRIORS

PRESET_DIR = Path(__file__).resolve().parent / "presets"

BACKBONES = ("resnet18", "resnet34", "resnet50", "resnet101", "dla34")
NECKS = ("fpn", "aggregator")
DATASETS = ("culane", "tusimple")


@dataclass(frozen=True)
class ModelConfig:
    """Network layout. ``neck`` is ``fpn`` (CLRNet teacher) or ``aggregator`` (CLRKDNet student).

    ``num_priors`` and ``num_points`` are the lane format's (:mod:`clrkdnet_core.lane_format`); presets may
    state them but not change them.
    """

    backbone: str
    neck: str
    refine_layers: int
    seg_classes: int
    num_priors: int = NUM_PRIORS
    num_points: int = NUM_OFFSETS
    sample_points: int = 36
    fc_hidden_dim: int = 64
    prior_feat_channels: int = 64


@dataclass(frozen=True)
class TestConfig:
    """Post-processing: softmax score threshold, lane NMS threshold (px of the 800-wide input), lanes kept."""

    __test__ = False  # not a pytest test class despite the name

    conf_threshold: float
    nms_thres: float
    max_lanes: int


@dataclass(frozen=True)
class TrainConfig:
    """Training recipe; ``teacher`` is None and distillation weights 0 for models trained without a teacher.

    ``frame_diff_threshold``: keep only training frames whose mean absolute difference to the previous frame
    is above this value (CULane "similar image removal"); None trains on every frame.
    """

    epochs: int
    batch_size: int
    lr: float
    cls_weight: float
    xyt_weight: float
    iou_weight: float
    seg_weight: float
    att_weight: float = 0.0
    logit_weight: float = 0.0
    prior_weight: float = 0.0
    bg_weight: float = 0.4
    frame_diff_threshold: float | None = None
    teacher: str | None = None
    weight_decay: float = 0.01
    eval_every: int = 1
    save_every: int = 10


@dataclass(frozen=True)
class OfficialWeights:
    """Where the authors publish the preset's trained checkpoint, and the score they report for it.

    ``file`` is the checkpoint's file name once downloaded (and unpacked: ``url`` may be a .zip holding it);
    ``url`` is None where the release page has no stable direct link; ``sha256`` is None until known.
    """

    page: str
    file: str
    metric: str
    reported: float
    url: str | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class Preset:
    """One complete model configuration; build the network with ``build_model(preset)``.

    ``official_weights`` is None for presets without a published checkpoint.
    """

    name: str
    dataset: str
    model: ModelConfig
    geometry: ImageGeometry
    test: TestConfig
    train: TrainConfig
    official_weights: OfficialWeights | None = None
    source: Path | None = field(default=None, compare=False)

    @property
    def is_student(self) -> bool:
        """True for CLRKDNet students (distilled from a teacher preset)."""
        return self.train.teacher is not None

    def with_overrides(self, overrides: dict[str, Any]) -> "Preset":
        """A copy with dotted keys replaced, e.g. ``{"train.lr": 1e-3, "test.max_lanes": 5}``.

        Values are converted to the field's type (command-line strings work); unknown keys raise PresetError.
        """
        data = _to_dict(self)
        for dotted, value in overrides.items():
            section, _, key = dotted.partition(".")
            if section in _SECTIONS and key:
                if key not in data[section]:
                    raise PresetError(
                        f"unknown preset key {dotted!r}; {section} has: {', '.join(data[section])}"
                    )
                data[section][key] = value
            elif section in ("name", "dataset") and not key:
                data[section] = value
            else:
                raise PresetError(
                    f"unknown preset key {dotted!r}; use name, dataset or <section>.<key>, section one of "
                    f"{', '.join(_SECTIONS)}"
                )
        return _from_dict(data, self.source)


_SECTIONS = {"model": ModelConfig, "geometry": ImageGeometry, "test": TestConfig, "train": TrainConfig}
_OPTIONAL_SECTIONS = {"official_weights": OfficialWeights}


def available_presets() -> list[str]:
    """Names of the presets shipped with the package, sorted."""
    return sorted(path.stem for path in PRESET_DIR.glob("*.yaml"))


def load_preset(name_or_path: "str | Path | Preset") -> Preset:
    """Load a shipped preset by name, or any preset YAML file by path. A Preset is returned unchanged."""
    if isinstance(name_or_path, Preset):
        return name_or_path
    text = str(name_or_path)
    path = Path(text)
    if not text.endswith((".yaml", ".yml")) and path.parent == Path("."):
        path = PRESET_DIR / f"{text}.yaml"
        if not path.is_file():
            raise PresetError(f"unknown preset {text!r}; available: {', '.join(available_presets())}")
    elif not path.is_file():
        raise PresetError(f"no such preset file: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise PresetError(f"cannot read preset file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise PresetError(f"preset file {path} must contain a mapping, got {type(data).__name__}")
    data.setdefault("name", path.stem)
    try:
        return _from_dict(data, path)
    except PresetError as exc:
        raise PresetError(f"{path}: {exc}") from exc


def save_preset(preset: Preset, path: str | Path, comment: str = "") -> Path:
    """Write ``preset`` as a YAML file that :func:`load_preset` reads back to an equal preset."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "".join(f"# {line}\n" for line in comment.splitlines())
    body = yaml.safe_dump(_to_dict(preset), sort_keys=False)
    path.write_text(header + body, encoding="utf-8")
    return path


def _from_dict(data: dict[str, Any], source: Path | None) -> Preset:
    unknown = set(data) - {"name", "dataset", *_SECTIONS, *_OPTIONAL_SECTIONS}
    if unknown:
        raise PresetError(f"unknown preset entries: {', '.join(sorted(unknown))}")
    missing = [key for key in ("dataset", *_SECTIONS) if key not in data]
    if missing:
        raise PresetError(f"missing preset entries: {', '.join(missing)}")
    sections = {name: _build_section(name, cls, data[name]) for name, cls in _SECTIONS.items()}
    sections |= {
        name: _build_section(name, cls, data[name])
        for name, cls in _OPTIONAL_SECTIONS.items()
        if data.get(name) is not None
    }
    preset = Preset(name=str(data["name"]), dataset=str(data["dataset"]), source=source, **sections)
    _validate(preset)
    return preset


def _build_section(name: str, cls: type, values: Any) -> Any:
    if not isinstance(values, dict):
        raise PresetError(f"preset section {name!r} must be a mapping, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(fields)
    if unknown:
        raise PresetError(
            f"unknown keys in {name}: {', '.join(sorted(unknown))}; allowed: {', '.join(fields)}"
        )
    hints = typing.get_type_hints(cls)
    converted = {key: _convert(f"{name}.{key}", hints[key], value) for key, value in values.items()}
    try:
        return cls(**converted)
    except TypeError as exc:  # a required key is missing
        raise PresetError(f"preset section {name!r}: {exc}") from exc
    except ClrkdnetError as exc:  # ImageGeometry rejects impossible sizes
        raise PresetError(f"preset section {name!r}: {exc}") from exc


def _convert(key: str, hint: Any, value: Any) -> Any:
    """Convert ``value`` to the annotated type (int, float, str, or an optional of those)."""
    optional = isinstance(hint, types.UnionType) and type(None) in hint.__args__
    if optional:
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            return None
        hint = next(arg for arg in hint.__args__ if arg is not type(None))
    if hint is str:
        return str(value)
    try:
        if hint is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if hint is float:
            return float(value)
    except (TypeError, ValueError) as exc:
        raise PresetError(f"{key} must be {hint.__name__}, got {value!r}") from exc
    return value


def _validate(preset: Preset) -> None:
    model = preset.model
    if preset.dataset not in DATASETS:
        raise PresetError(f"dataset must be one of {', '.join(DATASETS)}, got {preset.dataset!r}")
    if model.backbone not in BACKBONES:
        raise PresetError(f"model.backbone must be one of {', '.join(BACKBONES)}, got {model.backbone!r}")
    if model.neck not in NECKS:
        raise PresetError(f"model.neck must be one of {', '.join(NECKS)}, got {model.neck!r}")
    max_stages = 1 if model.neck == "aggregator" else 3
    if not 1 <= model.refine_layers <= max_stages:
        raise PresetError(f"model.refine_layers must be in 1..{max_stages} for neck {model.neck!r}")
    for key, value, fixed in (
        ("num_points", model.num_points, NUM_OFFSETS),
        ("num_priors", model.num_priors, NUM_PRIORS),
    ):
        if value != fixed:
            raise PresetError(
                f"model.{key} must be {fixed}, got {value}: the lane format of the official checkpoints, the "
                "lane NMS and exported engines fixes it (clrkdnet_core.lane_format)"
            )
    if model.seg_classes < 2:
        raise PresetError(
            f"model.seg_classes must be at least 2 (background + lanes), got {model.seg_classes}"
        )
    if preset.test.max_lanes < 1:
        raise PresetError(f"test.max_lanes must be at least 1, got {preset.test.max_lanes}")
    for key in ("epochs", "batch_size"):
        if getattr(preset.train, key) < 1:
            raise PresetError(f"train.{key} must be at least 1, got {getattr(preset.train, key)}")
    weights = preset.official_weights
    if weights is None:
        return
    if weights.sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", weights.sha256):
        raise PresetError(f"official_weights.sha256 must be 64 lowercase hex digits, got {weights.sha256!r}")
    if Path(weights.file).name != weights.file:
        raise PresetError(f"official_weights.file must be a bare file name, got {weights.file!r}")


def _to_dict(preset: Preset) -> dict[str, Any]:
    return {
        "name": preset.name,
        "dataset": preset.dataset,
        **{name: dataclasses.asdict(getattr(preset, name)) for name in _SECTIONS},
        **{
            name: dataclasses.asdict(getattr(preset, name))
            for name in _OPTIONAL_SECTIONS
            if getattr(preset, name) is not None
        },
    }
