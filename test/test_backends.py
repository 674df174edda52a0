"""onnxruntime and OpenVINO backends against eager PyTorch, TensorRT engine cache logic, device pre-processing
on CPU."""

import copy
import logging
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from clrkdnet_core.config import TestConfig
from clrkdnet_core.errors import BackendError
from clrkdnet_core.export.tensorrt import EngineKey, load_or_build_engine
from clrkdnet_core.models import build_model
from clrkdnet_core.postprocess.decode import decode_predictions

STUDENT = "clrkdnet_resnet18_culane"


@pytest.fixture(scope="module")
def student():
    torch.manual_seed(0)
    model = build_model(STUDENT).eval()
    with torch.no_grad():
        # Random weights predict zero-length lanes, which decode to nothing; long lanes give points to check.
        model.heads.reg_layers.bias[3] = 0.8
    return model


@pytest.fixture(scope="module")
def onnx_backend(student, tmp_path_factory):
    from clrkdnet_core.backends.onnxruntime_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(student, "cpu", cache_dir=tmp_path_factory.mktemp("cache"))


def test_onnxruntime_matches_eager_pytorch(student, onnx_backend):
    images = torch.rand((2, 3, 320, 800), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = student(images)
    got = onnx_backend(images)
    assert got.shape == (2, 192, 78) and got.dtype == torch.float32
    assert (got - expected).abs().max() < 1e-4
    geometry = student.preset.geometry
    # A low threshold so the random-weight network yields lanes to compare.
    lanes_torch = decode_predictions(expected, geometry, TestConfig(0.3, 50, 4))
    lanes_onnx = decode_predictions(got, geometry, TestConfig(0.3, 50, 4))
    assert [len(lanes) for lanes in lanes_onnx] == [len(lanes) for lanes in lanes_torch]
    assert sum(len(lanes) for lanes in lanes_torch) > 0
    for image_torch, image_onnx in zip(lanes_torch, lanes_onnx, strict=True):
        for a, b in zip(image_torch, image_onnx, strict=True):
            assert a.points.shape == b.points.shape
            assert np.abs(a.points - b.points).max() <= 0.5


def test_onnxruntime_export_is_cached_by_weights(student, onnx_backend, tmp_path):
    from clrkdnet_core.backends.onnxruntime_backend import OnnxRuntimeBackend

    first = OnnxRuntimeBackend(student, "cpu", cache_dir=tmp_path)
    stamp = (first.onnx_path, os.stat(first.onnx_path).st_mtime_ns)
    again = OnnxRuntimeBackend(student, "cpu", cache_dir=tmp_path)
    assert (again.onnx_path, os.stat(again.onnx_path).st_mtime_ns) == stamp
    changed = build_model(STUDENT).eval()
    with torch.no_grad():
        changed.heads.cls_layers.bias.add_(1.0)
    assert OnnxRuntimeBackend(changed, "cpu", cache_dir=tmp_path).onnx_path != first.onnx_path


def test_onnxruntime_rejects_bad_input_and_missing_cuda(onnx_backend):
    from clrkdnet_core.backends.onnxruntime_backend import OnnxRuntimeBackend
    from clrkdnet_core.errors import InputError

    with pytest.raises(InputError, match="320, 800"):
        onnx_backend(torch.zeros((1, 3, 100, 100)))
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime has a CUDA provider here")
    with pytest.raises(BackendError, match="onnxruntime-gpu"):
        OnnxRuntimeBackend(None, "cuda", onnx_path=onnx_backend.onnx_path)


def test_tensorrt_missing_gives_install_hint(student):
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        from clrkdnet_core.backends.tensorrt_backend import TensorRTBackend

        with pytest.raises(BackendError, match="TensorRT is not installed: pip install tensorrt"):
            TensorRTBackend(student, "cuda")
    else:
        pytest.skip("tensorrt is installed here")


# --- engine cache: the real cache code, with the TensorRT build and deserialize steps passed in ---


def make_key(**changes) -> EngineKey:
    fields = dict(
        onnx_sha256="ab" * 32,
        input_shape=(8, 3, 320, 800),
        precision="fp16",
        tensorrt_version="10.3.0",
        gpu_name="NVIDIA Test GPU",
        compute_capability=(8, 9),
    )
    fields.update(changes)
    return EngineKey(**fields)


class FakeTensorRT:
    """Engine bytes carry a magic header; anything else fails to deserialize like a corrupt engine."""

    MAGIC = b"ENGINE:"

    def __init__(self):
        self.builds = 0

    def build(self) -> bytes:
        self.builds += 1
        return self.MAGIC + f"build {self.builds}".encode()

    def deserialize(self, data: bytes):
        if not data.startswith(self.MAGIC):
            raise RuntimeError("Serialization assertion failed: magic tag mismatch")
        return data[len(self.MAGIC) :].decode()


def test_engine_is_built_once_then_loaded(tmp_path):
    trt = FakeTensorRT()
    engine, path = load_or_build_engine(tmp_path, make_key(), trt.build, trt.deserialize)
    assert engine == "build 1" and path.is_file() and trt.builds == 1
    engine, again = load_or_build_engine(tmp_path, make_key(), trt.build, trt.deserialize)
    assert engine == "build 1" and again == path and trt.builds == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary files left


@pytest.mark.parametrize("damage", [b"", b"garbage", None])
def test_corrupt_cached_engine_is_rebuilt_with_a_warning(tmp_path, caplog, damage):
    trt = FakeTensorRT()
    _, path = load_or_build_engine(tmp_path, make_key(), trt.build, trt.deserialize)
    path.write_bytes(path.read_bytes()[:3] if damage is None else damage)  # truncated or overwritten
    with caplog.at_level(logging.WARNING):
        engine, rebuilt = load_or_build_engine(tmp_path, make_key(), trt.build, trt.deserialize)
    assert engine == "build 2" and rebuilt == path and trt.builds == 2
    assert path.read_bytes() == FakeTensorRT.MAGIC + b"build 2"
    assert "does not load; rebuilding" in caplog.text


def test_unusable_fresh_build_is_an_error_and_nothing_is_cached(tmp_path):
    trt = FakeTensorRT()
    with pytest.raises(BackendError, match="built just now does not load"):
        load_or_build_engine(tmp_path, make_key(), lambda: b"broken", trt.deserialize)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "change",
    [
        {"onnx_sha256": "cd" * 32},
        {"input_shape": (4, 3, 320, 800)},
        {"precision": "fp32"},
        {"tensorrt_version": "11.0.0"},
        {"gpu_name": "NVIDIA Other GPU"},
        {"compute_capability": (9, 0)},
    ],
)
def test_every_key_field_selects_another_engine(tmp_path, change):
    trt = FakeTensorRT()
    _, first = load_or_build_engine(tmp_path, make_key(), trt.build, trt.deserialize)
    _, second = load_or_build_engine(tmp_path, make_key(**change), trt.build, trt.deserialize)
    assert first != second and trt.builds == 2


# --- pre-processing on the device (run here on CPU tensors) ---


@pytest.mark.parametrize("size", [(590, 1640), (720, 1280), (480, 640)])
def test_device_preprocess_matches_cpu_preprocess(size):
    from clrkdnet_core.config import load_preset
    from clrkdnet_core.gpu_preprocess import DevicePreprocessor
    from clrkdnet_core.preprocess import preprocess_batch

    rng = np.random.default_rng(size[0])
    # A smooth image with edges (lane-like stripes), plus noise: interpolation differences show on both.
    height, width = size
    base = np.linspace(0, 255, width, dtype=np.float32)[None, :, None] * np.ones((height, 1, 3), np.float32)
    base[:, width // 3 : width // 3 + 12] = 255
    image = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
    geometry = load_preset(STUDENT).geometry
    expected = preprocess_batch([image, image[:, ::-1]], geometry)
    got = DevicePreprocessor(geometry, "cpu")([image, np.ascontiguousarray(image[:, ::-1])])
    assert got.shape == expected.shape == (2, 3, 320, 800)
    assert got.is_contiguous(memory_format=torch.channels_last)
    difference = (got - expected).abs() * 255
    # OpenCV's fixed-point cubic weights vs float weights: a grey level here and there, never more than 2.
    assert difference.max() <= 2.0
    assert difference.mean() < 0.1


# --- every CPU backend with presets of two input sizes ---

SYNTHETIC = str(Path(__file__).resolve().parents[1] / "models" / "clrkdnet_resnet18_synthetic.yaml")
CPU_BACKENDS = ("torch", "onnxruntime", "openvino")


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize(("preset", "input_size"), [(STUDENT, (320, 800)), (SYNTHETIC, (160, 400))])
def test_cpu_backends_run_the_input_size_of_the_preset(backend, preset, input_size, tmp_path):
    from clrkdnet_core.backends import create_backend
    from clrkdnet_core.errors import InputError

    torch.manual_seed(0)
    model = build_model(preset).eval()
    options = {} if backend == "torch" else {"cache_dir": tmp_path}
    runner = create_backend(backend, copy.deepcopy(model), "cpu", **options)
    images = torch.rand((2, 3, *input_size), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(images)
    got = runner(images)
    assert got.shape == (2, 192, 78)
    assert (got - expected).abs().max() < 1e-3
    if backend != "torch":
        with pytest.raises(InputError, match=f"{input_size[0]}, {input_size[1]}"):
            runner(torch.zeros((1, 3, 100, 100)))


def test_openvino_is_true_fp32_and_bf16_only_where_the_cpu_has_it(student, tmp_path):
    from clrkdnet_core.backends.openvino_backend import OpenVinoBackend

    fp32 = OpenVinoBackend(student, "cpu", cache_dir=tmp_path)
    assert fp32.config["INFERENCE_PRECISION_HINT"] == "f32" and not fp32.config["ENABLE_CPU_PINNING"]
    images = torch.rand((1, 3, 320, 800), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = student(images)
    assert (fp32(images) - expected).abs().max() < 1e-4  # bf16 would differ by ~1e-2
    if "BF16" in fp32.core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        bf16 = OpenVinoBackend(student, "cpu", precision="bf16", onnx_path=fp32.onnx_path)
        assert 0 < (bf16(images) - expected).abs().max() < 0.5
    else:
        with pytest.raises(BackendError, match="this CPU has no bf16 instructions"):
            OpenVinoBackend(student, "cpu", precision="bf16", onnx_path=fp32.onnx_path)


def test_openvino_backends_released_in_any_order_leave_signals_working(tmp_path):
    """OpenVINO's CPU plugin swaps the loading thread's signal stack and restores the previous one when its
    Core goes: two Cores released first-made-first left the main thread's signal stack on unmapped memory,
    and the next Ctrl-C killed the process with a silent SIGSEGV (it crashed `make test` in a later test)."""
    import subprocess

    script = f"""
import gc, os, signal, time
from clrkdnet_core.backends.openvino_backend import OpenVinoBackend
from clrkdnet_core.models import build_model
model = build_model("models/clrkdnet_resnet18_synthetic.yaml").eval()
first = OpenVinoBackend(model, "cpu", cache_dir={str(tmp_path)!r})
second = OpenVinoBackend(model, "cpu", onnx_path=first.onnx_path, cache_dir={str(tmp_path)!r})
del first; gc.collect()
del second; gc.collect()
interrupted = []
signal.signal(signal.SIGINT, lambda *_: interrupted.append(True))
os.kill(os.getpid(), signal.SIGINT)
time.sleep(0.1)
assert interrupted
"""
    repo = Path(__file__).parent.parent
    command = [sys.executable, "-c", script]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=repo)
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])


def test_openvino_errors(student, monkeypatch):
    from clrkdnet_core.backends.openvino_backend import OpenVinoBackend

    with pytest.raises(BackendError, match="the openvino backend runs on the CPU, not on cuda"):
        OpenVinoBackend(student, "cuda")
    with pytest.raises(BackendError, match="the openvino backend on cpu runs precision fp32 or bf16 or int8"):
        OpenVinoBackend(student, "cpu", precision="fp16")
    monkeypatch.setitem(sys.modules, "openvino", None)  # as if it were not installed
    with pytest.raises(BackendError, match="OpenVINO is not installed: pip install openvino"):
        OpenVinoBackend(student, "cpu")


def test_missing_onnxruntime_gives_install_hint(student, monkeypatch):
    from clrkdnet_core.backends.onnxruntime_backend import OnnxRuntimeBackend

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    with pytest.raises(BackendError, match="onnxruntime is not installed: pip install onnxruntime"):
        OnnxRuntimeBackend(student, "cpu", precision="int8")


def test_backends_report_names_the_fastest_cpu_backend(capsys, monkeypatch, tmp_path):
    from clrkdnet_core.backends.__main__ import main

    monkeypatch.setenv("CLRKDNET_CACHE_DIR", str(tmp_path))

    models = Path(__file__).resolve().parents[1] / "models"
    arguments = ["--preset", str(models / "clrkdnet_resnet18_synthetic.yaml")]
    arguments += ["--weights", str(models / "clrkdnet_resnet18_synthetic.pth"), "--iterations", "1"]
    assert main(arguments) == 0
    out = capsys.readouterr().out
    for row in ("torch fp32", "onnxruntime fp32", "openvino fp32"):
        assert row in out
    assert "int8" not in out  # only with --calibration
    assert "fastest on this CPU: " in out
    assert "backend auto (the default) runs openvino" in out


# --- backend and precision auto ---


def picked(choice) -> tuple[str, str]:
    return choice.backend, choice.precision


@pytest.mark.parametrize(
    ("flags", "precision", "why"),
    [(("avx512_bf16",), "bf16", "native bf16 instructions (avx512_bf16)"), ((), "fp32", "no native bf16")],
)
def test_auto_on_a_cpu_is_openvino_in_bf16_only_with_native_bf16(flags, precision, why):
    from clrkdnet_core.backend_choice import choose_backend

    choice = choose_backend("cpu", bf16_flags=flags)
    assert (choice.backend, choice.precision) == ("openvino", precision)
    assert why in choice.reason and choice.reason.startswith(f"openvino {precision}: the fastest installed")


def test_auto_falls_back_to_what_is_installed(monkeypatch):
    from clrkdnet_core import backend_choice

    installed = {"torch", "onnxruntime"}
    monkeypatch.setattr(backend_choice, "importable", lambda name: name in installed)
    choice = backend_choice.choose_backend("cpu", bf16_flags=("amx_bf16",))
    assert (choice.backend, choice.precision) == ("onnxruntime", "fp32")
    assert "(openvino not installed)" in choice.reason
    installed.clear()
    assert backend_choice.choose_backend("cpu").backend == "torch"
    assert picked(backend_choice.choose_backend("cuda")) == ("torch", "fp16")  # no TensorRT
    installed.add("tensorrt")
    assert picked(backend_choice.choose_backend("cuda")) == ("tensorrt", "fp16")


def test_explicit_values_are_kept_and_auto_fills_in_the_other(monkeypatch):
    from clrkdnet_core import backend_choice

    monkeypatch.setattr(backend_choice, "importable", lambda name: True)
    choose = backend_choice.choose_backend
    assert choose("cpu", "torch", "fp32") == backend_choice.BackendChoice(
        "torch", "fp32", "torch fp32 as set"
    )
    assert picked(choose("cpu", "torch")) == ("torch", "fp32")
    assert picked(choose("cpu", "onnxruntime")) == ("onnxruntime", "fp32")  # its CPU fp16 is slower
    assert picked(choose("cpu", "openvino", bf16_flags=())) == ("openvino", "fp32")
    assert picked(choose("cuda", "torch")) == ("torch", "fp16")
    assert picked(choose("cpu", precision="int8")) == ("openvino", "int8")
    assert picked(choose("cpu", precision="fp16")) == ("onnxruntime", "fp16")
    monkeypatch.setattr(backend_choice, "importable", lambda name: False)
    with pytest.raises(BackendError, match="no installed backend runs precision int8 on cpu"):
        choose("cpu", precision="int8")
    with pytest.raises(BackendError, match="unknown backend 'tpu'; available: auto, torch"):
        choose("cpu", "tpu")
    with pytest.raises(BackendError, match="unknown precision 'fp8'; expected one of auto, fp32"):
        choose("cpu", precision="fp8")


def test_the_cpu_flags_are_read_from_cpuinfo(tmp_path):
    from clrkdnet_core.backend_choice import cpu_bf16_flags

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu avx512f amx_bf16 avx512_bf16\n")
    assert cpu_bf16_flags(cpuinfo) == ("avx512_bf16", "amx_bf16")
    cpuinfo.write_text("flags\t\t: fpu avx2\n")
    assert cpu_bf16_flags(cpuinfo) == ()
    assert cpu_bf16_flags(tmp_path / "missing") == ()


def test_from_preset_logs_the_auto_choice(caplog):
    from clrkdnet_core.inference import LaneDetector

    with caplog.at_level(logging.INFO, logger="clrkdnet_core.inference"):
        detector = LaneDetector.from_preset(STUDENT, None, device="cpu", backend="torch")
    assert "backend auto: torch fp32: as set; fp32, the fastest precision of torch on cpu" in caplog.text
    assert (detector.backend, detector.precision) == ("torch", "fp32") == picked(detector.choice)
