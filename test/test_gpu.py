"""CUDA-only checks of the fast paths: onnxruntime CUDA, TensorRT engines, device pre-processing, Triton NMS.

Skipped where ``torch.cuda.is_available()`` is False. Lanes must match eager PyTorch within 0.5 px in float32
and 2 px in float16, with the same lane counts.
"""

import dataclasses

import numpy as np
import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]

STUDENT = "clrkdnet_resnet18_culane"
CUDA = torch.device("cuda")


@pytest.fixture(scope="module")
def student():
    from clrkdnet_core.models import build_model

    torch.manual_seed(0)
    model = build_model(STUDENT).eval()
    with torch.no_grad():
        model.heads.reg_layers.bias[3] = 0.8  # long lanes, so decoding yields points to compare
    return model


@pytest.fixture(scope="module")
def images():
    from clrkdnet_core.data.synthetic import render_scene

    return [render_scene(np.random.default_rng(seed), 1640, 590)[0] for seed in range(4)]


def lanes_of(model, predictions):
    test = model.preset.test
    from clrkdnet_core.postprocess.decode import decode_predictions

    return decode_predictions(
        predictions, model.preset.geometry, dataclasses.replace(test, conf_threshold=0.3)
    )


def assert_same_lanes(expected, got, tolerance_px):
    assert [len(lanes) for lanes in got] == [len(lanes) for lanes in expected]
    for image_expected, image_got in zip(expected, got, strict=True):
        for a, b in zip(image_expected, image_got, strict=True):
            assert a.points.shape == b.points.shape
            assert np.abs(a.points - b.points).max() <= tolerance_px


def eager_predictions(model, batch):
    import copy

    with torch.inference_mode():
        return copy.deepcopy(model).cuda()(batch.cuda()).float()


def test_onnxruntime_cuda_matches_eager(student, images, tmp_path):
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime-gpu is not installed")
    from clrkdnet_core.backends.onnxruntime_backend import OnnxRuntimeBackend
    from clrkdnet_core.preprocess import preprocess_batch

    batch = preprocess_batch(images, student.preset.geometry, CUDA)
    backend = OnnxRuntimeBackend(student, CUDA, cache_dir=tmp_path)
    got = backend(batch)
    assert got.is_cuda
    expected = eager_predictions(student, batch)
    assert_same_lanes(lanes_of(student, expected), lanes_of(student, got), 0.5)


@pytest.mark.parametrize(("fp16", "tolerance_px"), [(False, 0.5), (True, 2.0)])
def test_tensorrt_matches_eager_and_rebuilds_corrupt_engine(student, images, tmp_path, fp16, tolerance_px):
    pytest.importorskip("tensorrt")
    from clrkdnet_core.backends.tensorrt_backend import TensorRTBackend
    from clrkdnet_core.preprocess import preprocess_batch

    batch = preprocess_batch(images, student.preset.geometry, CUDA)
    backend = TensorRTBackend(
        student, CUDA, precision="fp16" if fp16 else "fp32", max_batch=4, cache_dir=tmp_path
    )
    expected = lanes_of(student, eager_predictions(student, batch))
    assert_same_lanes(expected, lanes_of(student, backend(batch)), tolerance_px)

    backend.engine_path.write_bytes(b"not an engine")
    rebuilt = TensorRTBackend(
        student, CUDA, precision="fp16" if fp16 else "fp32", max_batch=4, cache_dir=tmp_path
    )
    assert rebuilt.engine_path == backend.engine_path
    assert rebuilt.engine_path.stat().st_size > 1000
    assert_same_lanes(expected, lanes_of(student, rebuilt(batch)), tolerance_px)


def test_device_preprocess_on_cuda_matches_cpu(images):
    from clrkdnet_core.config import load_preset
    from clrkdnet_core.gpu_preprocess import DevicePreprocessor
    from clrkdnet_core.preprocess import preprocess_batch

    geometry = load_preset(STUDENT).geometry
    preprocessor = DevicePreprocessor(geometry, CUDA)
    for _ in range(2):  # the second call reuses the pinned buffer
        got = preprocessor(images)
        assert got.is_cuda
        difference = (got.cpu() - preprocess_batch(images, geometry)).abs() * 255
        assert difference.max() <= 2.0 and difference.mean() < 0.1


def test_torch_fp16_lanes_close_to_fp32(student, images):
    import copy

    from clrkdnet_core.backends import create_backend
    from clrkdnet_core.preprocess import preprocess_batch

    batch = preprocess_batch(images, student.preset.geometry, CUDA)
    expected = lanes_of(student, eager_predictions(student, batch))
    backend = create_backend("torch", copy.deepcopy(student), CUDA, precision="fp16")
    assert_same_lanes(expected, lanes_of(student, backend(batch)), 2.0)


def test_triton_nms_on_full_batches_matches_pytorch_on_gpu():
    pytest.importorskip("triton")
    from clrkdnet_core.postprocess import nms, nms_triton

    generator = torch.Generator(device=CUDA).manual_seed(0)
    lanes = torch.rand((8, 192, 77), generator=generator, device=CUDA)
    lanes[..., 4] = lanes[..., 4] * 80 - 5
    lanes[..., 5:] = lanes[..., 5:] * 100 + 300
    scores = torch.rand((8, 192), generator=generator, device=CUDA)
    eligible = scores > 0.4
    keep, count = nms_triton.lane_nms_batched(lanes, scores, eligible, 50.0, 4)
    expected_keep, expected_count = nms.lane_nms_batched(lanes, scores, eligible, 50.0, 4)
    assert torch.equal(keep, expected_keep) and torch.equal(count, expected_count)


def test_lane_detector_on_cuda_uses_device_preprocessing_and_triton_nms(student, images):
    pytest.importorskip("triton")
    import copy

    from clrkdnet_core.backends import create_backend
    from clrkdnet_core.gpu_preprocess import DevicePreprocessor
    from clrkdnet_core.inference import LaneDetector
    from clrkdnet_core.postprocess import nms, nms_triton

    detector = LaneDetector(student.preset, create_backend("torch", copy.deepcopy(student), CUDA))
    assert isinstance(detector.preprocess, DevicePreprocessor)
    assert detector.nms is nms_triton.lane_nms_batched
    detector.set_thresholds(conf_threshold=0.3)
    got = detector.detect_batch(images)
    detector.nms = nms.lane_nms_batched
    assert_same_lanes(detector.detect_batch(images), got, 0.0)
