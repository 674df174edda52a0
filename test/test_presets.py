"""Presets: the shipped YAML files carry the official config values; loading, overrides and bad files."""

import json
import re
from pathlib import Path

import pytest

from clrkdnet_core.config import PRESET_DIR, Preset, available_presets, load_preset
from clrkdnet_core.errors import InputError, PresetError
from clrkdnet_core.geometry import ImageGeometry
from clrkdnet_core.models import build_model

REFERENCE = Path(__file__).parent / "data" / "reference"
REFERENCE_PRESETS = sorted(p.name for p in REFERENCE.iterdir() if (p / "manifest.json").is_file())

STUDENTS = {
    "clrkdnet_resnet18_culane",
    "clrkdnet_dla34_culane",
    "clrkdnet_resnet18_tusimple",
    "clrkdnet_dla34_tusimple",
}
TEACHERS = {
    "clrnet_resnet18_culane",
    "clrnet_resnet34_culane",
    "clrnet_resnet101_culane",
    "clrnet_dla34_culane",
    "clrnet_resnet18_tusimple",
    "clrnet_resnet34_tusimple",
    "clrnet_resnet101_tusimple",
}

# MODEL.md 4.5: epochs, batch, lr, (cls, xyt, iou, seg) weights
RECIPES = {
    "clrnet_resnet18_culane": (15, 24, 6e-4, (2, 0.2, 2, 1)),
    "clrnet_resnet34_culane": (15, 24, 6e-4, (2, 0.2, 2, 1)),
    "clrnet_resnet101_culane": (20, 12, 3e-4, (2, 0.2, 2, 1)),
    "clrnet_dla34_culane": (15, 24, 6e-4, (2, 0.2, 2, 1)),
    "clrnet_resnet18_tusimple": (70, 40, 1e-3, (6, 0.5, 2, 1)),
    "clrnet_resnet34_tusimple": (70, 32, 8e-4, (6, 0.5, 2, 1)),
    "clrnet_resnet101_tusimple": (70, 10, 3e-4, (6, 0.5, 2, 1)),
    "clrkdnet_resnet18_culane": (20, 24, 6e-4, (2, 0.2, 2, 1)),
    "clrkdnet_dla34_culane": (20, 24, 6e-4, (2, 0.2, 3, 1)),
    "clrkdnet_resnet18_tusimple": (20, 24, 6e-4, (6, 0.5, 2, 1)),
    "clrkdnet_dla34_tusimple": (20, 24, 6e-4, (6, 0.5, 2, 1)),
}
# MODEL.md 3.4: attention, logit, prior distillation weights and the teacher
DISTILLATION = {
    "clrkdnet_resnet18_culane": (1.0, 5.0, 3.0, "clrnet_resnet101_culane"),
    "clrkdnet_dla34_culane": (0.0, 5.0, 5.0, "clrnet_dla34_culane"),
    "clrkdnet_resnet18_tusimple": (1.0, 5.0, 3.0, "clrnet_resnet101_tusimple"),
    "clrkdnet_dla34_tusimple": (0.0, 5.0, 5.0, "clrnet_resnet101_tusimple"),
}


def test_available_presets_are_the_shipped_files():
    assert set(available_presets()) == STUDENTS | TEACHERS
    assert available_presets() == sorted(available_presets())
    # the YAML files live inside the package so they are installed with it
    assert Path(__file__).resolve().parent.parent / "clrkdnet_core" / "presets" == PRESET_DIR


@pytest.mark.parametrize("name", sorted(STUDENTS | TEACHERS))
def test_preset_values(name):
    preset = load_preset(name)
    assert preset.name == name
    culane = preset.dataset == "culane"
    assert preset.dataset == ("culane" if name.endswith("_culane") else "tusimple")
    assert preset.geometry == (ImageGeometry(1640, 590, 270) if culane else ImageGeometry(1280, 720, 160))
    assert (preset.geometry.img_w, preset.geometry.img_h) == (800, 320)
    assert preset.model.seg_classes == (5 if culane else 7)
    assert (preset.test.conf_threshold, preset.test.nms_thres) == (0.4, 50)
    assert preset.test.max_lanes == (4 if culane else 5)
    assert preset.model.backbone == name.split("_")[1]
    model = preset.model
    assert (model.num_priors, model.num_points, model.sample_points) == (192, 72, 36)
    assert (model.fc_hidden_dim, model.prior_feat_channels) == (64, 64)

    epochs, batch, lr, weights = RECIPES[name]
    train = preset.train
    assert (train.epochs, train.batch_size) == (epochs, batch)
    assert train.lr == pytest.approx(lr)
    assert (train.cls_weight, train.xyt_weight, train.iou_weight, train.seg_weight) == weights
    assert train.bg_weight == 0.4
    assert train.weight_decay == 0.01

    if name in STUDENTS:
        assert preset.is_student
        assert (model.neck, model.refine_layers) == ("aggregator", 1)
        att, logit, prior, teacher = DISTILLATION[name]
        assert (train.att_weight, train.logit_weight, train.prior_weight, train.teacher) == (
            att,
            logit,
            prior,
            teacher,
        )
        assert load_preset(teacher).dataset == preset.dataset
        assert train.frame_diff_threshold == (15 if culane else None)
    else:
        assert not preset.is_student
        assert (model.neck, model.refine_layers) == ("fpn", 3)
        assert (train.att_weight, train.logit_weight, train.prior_weight) == (0, 0, 0)
        assert train.frame_diff_threshold is None


@pytest.mark.parametrize("name", REFERENCE_PRESETS)
def test_preset_matches_reference_meta(name):
    meta = json.loads((REFERENCE / name / "manifest.json").read_text())["meta"]
    preset = load_preset(name)
    geometry = preset.geometry
    assert (geometry.ori_img_w, geometry.ori_img_h, geometry.cut_height) == (
        meta["ori_img_w"],
        meta["ori_img_h"],
        meta["cut_height"],
    )
    assert preset.test.max_lanes == meta["max_lanes"]
    assert preset.test.conf_threshold == meta["conf_threshold"]
    assert preset.test.nms_thres == meta["nms_thres"]


def test_unknown_name_lists_available():
    with pytest.raises(PresetError, match="unknown preset 'clrnet_resnet19_culane'") as info:
        load_preset("clrnet_resnet19_culane")
    for name in available_presets():
        assert name in str(info.value)


def test_load_by_path_and_preset_passthrough(tmp_path):
    text = (PRESET_DIR / "clrnet_resnet18_culane.yaml").read_text()
    path = tmp_path / "my_camera.yaml"
    path.write_text(
        text.replace("name: clrnet_resnet18_culane\n", "").replace("cut_height: 270", "cut_height: 300")
    )
    preset = load_preset(path)
    assert preset.name == "my_camera"  # the file name when the YAML has none
    assert preset.geometry.cut_height == 300
    assert preset.source == path
    assert load_preset(str(path)) == preset
    assert load_preset(preset) is preset


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda t: t.replace("  max_lanes: 4\n", "  max_lanes: 4\n  top_k: 3\n"),
            "unknown keys in test: top_k",
        ),
        (lambda t: t + "extra: 1\n", "unknown preset entries: extra"),
        (lambda t: t.replace("  epochs: 15\n", ""), "train"),
        (lambda t: t.replace("epochs: 15", "epochs: many"), "train.epochs must be int"),
        (lambda t: t.replace("epochs: 15", "epochs: 1.5"), "train.epochs must be int"),
        (lambda t: t.replace("backbone: resnet18", "backbone: vgg16"), "model.backbone must be one of"),
        (lambda t: t.replace("neck: fpn", "neck: bifpn"), "model.neck must be one of"),
        (lambda t: t.replace("refine_layers: 3", "refine_layers: 4"), "refine_layers"),
        (lambda t: t.replace("dataset: culane", "dataset: llamas"), "dataset must be one of"),
        (lambda t: t.replace("cut_height: 270", "cut_height: 600"), "cut_height"),
        (
            lambda t: re.sub(r"geometry:\n(  .*\n)+", "geometry: 3\n", t),
            "section 'geometry' must be a mapping",
        ),
        (lambda t: "- a list\n", "must contain a mapping"),
        (lambda t: "model: [unclosed\n", "cannot read preset file"),
    ],
)
def test_malformed_preset_file(tmp_path, edit, message):
    path = tmp_path / "bad.yaml"
    path.write_text(edit((PRESET_DIR / "clrnet_resnet18_culane.yaml").read_text()))
    with pytest.raises(PresetError, match=message) as info:
        load_preset(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(("key", "value", "fixed"), [("num_points", 36, 72), ("num_priors", 96, 192)])
def test_the_lane_format_is_fixed(tmp_path, key, value, fixed):
    """A preset that changes the lane format fails to load instead of building and failing in decoding."""
    path = tmp_path / "bad.yaml"
    text = (PRESET_DIR / "clrnet_resnet18_culane.yaml").read_text()
    path.write_text(text.replace("model:\n", f"model:\n  {key}: {value}\n", 1))
    message = rf"model\.{key} must be {fixed}, got {value}: the lane format"
    with pytest.raises(PresetError, match=message):
        build_model(path)
    with pytest.raises(PresetError, match=message):
        load_preset("clrnet_resnet18_culane").with_overrides({f"model.{key}": value})


def test_missing_preset_file(tmp_path):
    with pytest.raises(PresetError, match="no such preset file"):
        load_preset(tmp_path / "absent.yaml")


def test_with_overrides():
    preset = load_preset("clrkdnet_resnet18_culane")
    changed = preset.with_overrides(
        {"train.lr": "1e-3", "train.epochs": "2", "test.max_lanes": 6, "train.teacher": "none", "name": "x"}
    )
    assert isinstance(changed, Preset)
    assert (changed.train.lr, changed.train.epochs, changed.test.max_lanes) == (1e-3, 2, 6)
    assert changed.train.teacher is None and changed.name == "x"
    assert changed.model == preset.model
    assert preset.train.lr == 6e-4  # the original is unchanged
    assert preset.with_overrides({}) == preset


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"train.learning_rate": 1}, "unknown preset key 'train.learning_rate'"),
        ({"optimizer.lr": 1}, "unknown preset key 'optimizer.lr'"),
        ({"lr": 1}, "unknown preset key 'lr'"),
        ({"train.batch_size": "big"}, "train.batch_size must be int"),
        ({"model.backbone": "vgg"}, "model.backbone must be one of"),
        ({"train.epochs": 0}, "train.epochs must be at least 1, got 0"),
        ({"train.batch_size": -2}, "train.batch_size must be at least 1, got -2"),
    ],
)
def test_bad_overrides(overrides, message):
    with pytest.raises(PresetError, match=message):
        load_preset("clrnet_resnet18_culane").with_overrides(overrides)


def test_geometry_helpers():
    culane = load_preset("clrnet_resnet18_culane").geometry
    assert culane.cut_height_for(590) == 270
    assert culane.cut_height_for(1180) == 540
    assert culane.cut_height_for(720) == round(270 * 720 / 590)
    assert culane.crop_ratio == pytest.approx(270 / 590)
    scaled = culane.scaled_to(1920, 1080)
    assert scaled == ImageGeometry(1920, 1080, round(270 * 1080 / 590))
    assert culane.scaled_to(1640, 590) == culane
    with pytest.raises(InputError):
        culane.cut_height_for(0)
    with pytest.raises(InputError):
        culane.scaled_to(-1, 10)
    with pytest.raises(InputError):
        ImageGeometry(1640, 590, 590)
