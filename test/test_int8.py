"""INT8 for onnxruntime and OpenVINO with the shipped demo model: lanes agree with fp32, the quantized model
is cached and rebuilt, the accuracy gate refuses below its threshold, every bad input is one clear error.

Calibration uses the documented minimum of generated scenes; the int8 models are built once per session.
"""

import json
import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.network import f1_on_scenes, held_out_scenes
from clrkdnet_core import quantization
from clrkdnet_core.calibration import MIN_CALIBRATION_IMAGES, load_calibration
from clrkdnet_core.data.synthetic import generate_dataset
from clrkdnet_core.errors import BackendError, InputError
from clrkdnet_core.export.__main__ import main as export_main
from clrkdnet_core.inference import LaneDetector
from clrkdnet_core.quantization import AccuracyGateError

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = REPO / "models" / "clrkdnet_resnet18_synthetic.pth"
PRESET = REPO / "models" / "clrkdnet_resnet18_synthetic.yaml"
RUNTIMES = ("onnxruntime", "openvino")


@pytest.fixture(scope="session")
def calibration_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("calibration")
    return generate_dataset(root, "culane", MIN_CALIBRATION_IMAGES, seed=11, split=(1, 0, 0), progress=False)


@pytest.fixture(scope="session")
def held_out(tmp_path_factory) -> list[tuple[np.ndarray, list[np.ndarray]]]:
    """40 generated scenes none of which is in the calibration or training sets, with their CULane labels."""
    return held_out_scenes(tmp_path_factory.mktemp("held_out"), 40)


@pytest.fixture(scope="session")
def int8_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("int8_cache")


@pytest.fixture(scope="session")
def detectors(calibration_dir, int8_cache) -> dict[str, LaneDetector]:
    built = {"fp32": LaneDetector.from_preset(PRESET, WEIGHTS, "cpu", "torch", "fp32")}
    for runtime in RUNTIMES:
        built[runtime] = LaneDetector.from_preset(
            PRESET, WEIGHTS, "cpu", runtime, "int8", calibration_dir, cache_dir=int8_cache
        )
    return built


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_int8_lanes_agree_with_fp32_on_unseen_scenes(detectors, held_out, runtime):
    int8 = detectors[runtime]
    assert int8.backend == runtime and int8.precision == "int8"
    assert int8.runner.agreement.passes
    f1_fp32, f1_int8 = (f1_on_scenes(detector, held_out) for detector in (detectors["fp32"], int8))
    counts_fp32, counts_int8 = (
        [len(d.detect(image)) for image, _ in held_out] for d in (detectors["fp32"], int8)
    )
    same = sum(a == b for a, b in zip(counts_fp32, counts_int8, strict=True))
    assert same >= len(held_out) - 2, (counts_fp32, counts_int8)
    assert f1_fp32 > 0.85 and abs(f1_int8 - f1_fp32) <= 0.01, (f1_fp32, f1_int8)


def test_cached_int8_model_is_reused_and_rebuilt_when_unreadable(
    detectors, calibration_dir, int8_cache, caplog
):
    path = Path(detectors["onnxruntime"].runner.onnx_path)
    assert path.parent == int8_cache and path.name.startswith("int8-onnxruntime-160x400-")
    stamp = path.stat().st_mtime_ns
    with caplog.at_level(logging.WARNING):
        again = LaneDetector.from_preset(
            PRESET, WEIGHTS, "cpu", "onnxruntime", "int8", calibration_dir, cache_dir=int8_cache
        )
    assert again.runner.onnx_path == str(path) and path.stat().st_mtime_ns == stamp
    assert "building INT8 model" not in caplog.text
    # Another runtime, another model: the key holds the runtime.
    assert detectors["openvino"].runner.onnx_path != str(path)

    path.write_bytes(path.read_bytes()[:1000])  # truncated
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        rebuilt = LaneDetector.from_preset(
            PRESET, WEIGHTS, "cpu", "onnxruntime", "int8", calibration_dir, cache_dir=int8_cache
        )
    assert "does not load; rebuilding it" in caplog.text
    assert rebuilt.runner.onnx_path == str(path) and path.stat().st_size > 100_000
    assert not [p for p in int8_cache.iterdir() if p.name.endswith(".tmp")]


def test_export_cli_prebuilds_the_int8_model(detectors, calibration_dir, int8_cache, capsys):
    arguments = ["int8", "--backend", "openvino", "--preset", str(PRESET), "--weights", str(WEIGHTS)]
    arguments += ["--calibration", str(calibration_dir), "--cache-dir", str(int8_cache)]
    assert export_main(arguments) == 0
    out = capsys.readouterr().out
    assert "int8 against fp32 on 4 held-out images: F1@50" in out
    assert f"int8 model ready: {detectors['openvino'].runner.onnx_path}" in out


def test_accuracy_gate_refuses_below_the_threshold_and_warns_when_forced(
    detectors, calibration_dir, int8_cache, monkeypatch, caplog
):
    # The cached model's agreement is judged again on every load: above what any int8 model reaches, it is
    # refused (black calibration frames did not get below the real threshold on this model).
    monkeypatch.setattr(quantization, "MIN_AGREEMENT_F1", 1.01)
    options = dict(calibration=calibration_dir, cache_dir=int8_cache)
    with pytest.raises(AccuracyGateError, match=r"F1@50 1\.0000.*: F1@50 below 1.01; refusing int8"):
        LaneDetector.from_preset(PRESET, WEIGHTS, "cpu", "openvino", "int8", **options)
    with caplog.at_level(logging.WARNING):
        forced = LaneDetector.from_preset(
            PRESET, WEIGHTS, "cpu", "openvino", "int8", **options, force_int8=True
        )
    assert "used anyway (force_int8)" in caplog.text and forced.precision == "int8"


def test_bad_calibration_sets_and_devices_are_one_clear_error(calibration_dir, tmp_path):
    from clrkdnet_core.backends import create_backend
    from clrkdnet_core.models import build_model

    with pytest.raises(InputError, match="int8 needs calibration images: calibration=DIR"):
        LaneDetector.from_preset(PRESET, WEIGHTS, "cpu", "openvino", "int8")
    with pytest.raises(InputError, match=r"calibration folder .*missing does not exist"):
        load_calibration(tmp_path / "missing")
    few = tmp_path / "few"
    few.mkdir()
    for image in sorted(calibration_dir.rglob("*.jpg"))[:5]:
        shutil.copy(image, few / image.name)
    with pytest.raises(InputError, match=f"has 5 images; int8 needs at least {MIN_CALIBRATION_IMAGES}"):
        load_calibration(few)
    broken = tmp_path / "broken"
    shutil.copytree(calibration_dir, broken)
    (broken / "zz_corrupt.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(InputError, match=r"cannot read image \S*zz_corrupt\.jpg"):
        LaneDetector.from_preset(PRESET, WEIGHTS, "cpu", "onnxruntime", "int8", broken, cache_dir=tmp_path)
    model = build_model(PRESET)
    for backend in RUNTIMES:
        with pytest.raises(BackendError, match=r"int8 runs on the CPU only|runs on the CPU, not on cuda"):
            create_backend(backend, model, "cuda", precision="int8", calibration=calibration_dir)
    with pytest.raises(BackendError, match="the torch backend on cpu runs precision fp32, not int8"):
        create_backend("torch", model, "cpu", precision="int8")


def test_predict_and_evaluate_take_backend_precision_and_calibration(
    detectors, calibration_dir, int8_cache, tmp_path, monkeypatch, capsys
):
    from clrkdnet_core.cli import run_cli
    from clrkdnet_core.evaluate import main as evaluate_main
    from clrkdnet_core.predict import main as predict_main

    monkeypatch.setenv("CLRKDNET_CACHE_DIR", str(int8_cache))  # the session's int8 models
    image = sorted(calibration_dir.rglob("*.jpg"))[0]
    arguments = [str(image), "--preset", str(PRESET), "--weights", str(WEIGHTS), "--out", str(tmp_path)]
    arguments += ["--device", "cpu", "--backend", "openvino", "--precision", "int8"]
    assert predict_main([*arguments, "--calibration", str(calibration_dir)]) == 0
    capsys.readouterr()
    lanes = json.loads((tmp_path / image.with_suffix(".json").name).read_text())["lanes"]
    assert len(lanes) == len(detectors["openvino"].detect(cv2.imread(str(image))))
    assert run_cli(predict_main, arguments) == 2
    assert capsys.readouterr().err.startswith("error: int8 needs calibration images")
    evaluation = ["model", "--preset", str(PRESET), "--weights", str(WEIGHTS), "--dataset", "culane"]
    evaluation += [
        "--root",
        str(calibration_dir),
        "--device",
        "cpu",
        "--backend",
        "torch",
        "--precision",
        "int8",
    ]
    assert run_cli(evaluate_main, evaluation) == 2
    assert "error: the torch backend on cpu runs precision fp32, not int8" in capsys.readouterr().err
