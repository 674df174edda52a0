"""Networks: official state_dict layouts, head buffers, forward outputs in eval and training mode."""

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision

from clrkdnet_core.config import TestConfig
from clrkdnet_core.errors import CheckpointError, InputError
from clrkdnet_core.models import LaneNet, build_model
from clrkdnet_core.postprocess.decode import decode_predictions

REFERENCE = Path(__file__).parent / "data" / "reference"
REFERENCE_PRESETS = sorted(p.name for p in REFERENCE.iterdir() if (p / "manifest.json").is_file())
EXACT_BUFFERS = (
    "heads.sample_x_indexs",
    "heads.prior_feat_ys",
    "heads.prior_ys",
    "heads.prior_embeddings.weight",
    "heads.criterion.weight",
)

torch.set_num_threads(2)


def manifest(name: str) -> dict:
    return json.loads((REFERENCE / name / "manifest.json").read_text())


@pytest.fixture(scope="module")
def models():
    """Built networks by preset name, shared by the tests of this module (building R101 takes a while)."""
    cache: dict[str, LaneNet] = {}

    def get(name: str) -> LaneNet:
        if name not in cache:
            torch.manual_seed(0)
            cache[name] = build_model(name).eval()
        return cache[name]

    return get


def randomize_(module: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial weights everywhere (the attention output conv W is zero at initialisation)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            if "prior_embeddings" not in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.05)
        for name, buffer in module.named_buffers():
            if name.endswith("running_var"):
                buffer.copy_(torch.rand(buffer.shape, generator=generator) + 0.5)
            elif name.endswith("running_mean"):
                buffer.copy_(torch.randn(buffer.shape, generator=generator) * 0.1)


@pytest.mark.parametrize("name", REFERENCE_PRESETS)
def test_state_dict_layout_equals_official(models, name):
    reference = manifest(name)
    state = models(name).state_dict()
    ours = [(key, list(value.shape), str(value.dtype).removeprefix("torch.")) for key, value in state.items()]
    expected = [(entry["key"], entry["shape"], entry["dtype"]) for entry in reference["keys"]]
    assert ours == expected  # same names, shapes, dtypes and order
    assert len(state) == reference["meta"]["n_entries"]
    assert sum(p.numel() for p in models(name).parameters()) == reference["meta"]["n_params"]


@pytest.mark.parametrize("name", REFERENCE_PRESETS)
def test_head_buffers_equal_official(models, name):
    reference = np.load(REFERENCE / name / "buffers.npz")
    state = models(name).state_dict()
    for key in EXACT_BUFFERS:
        np.testing.assert_array_equal(state[key].numpy(), reference[key], err_msg=key)
        assert state[key].numpy().dtype == reference[key].dtype
    # The prior xs go through tan(); the reference's float32 tan differs from this CPU's by at most one ulp
    # for two of the eight angles, so the line equation agrees to float32 resolution, not bit for bit.
    for key in ("heads.priors", "heads.priors_on_featmap"):
        np.testing.assert_allclose(state[key].numpy(), reference[key], rtol=0, atol=2.5e-7, err_msg=key)


def test_golden_initial_priors(models):
    priors = models("clrkdnet_resnet18_culane").heads.priors
    golden = {
        0: ((0, 0, 0.16), {0: 0.0, 35: 0.359115, 71: 0.728491}),
        24: ((0, 0.027027, 0.2), {0: 0.027027, 35: 0.29876, 71: 0.578257}),
        27: ((0, 0.027027, 0.8), {71: -0.524226}),
        168: ((0, 1, 0.68), {71: 0.745829}),
        191: ((0.5, 1, 0.84), {0: 1.364263, 71: 0.635737}),
    }
    for index, (params, xs) in golden.items():
        assert priors[index, 2:5].tolist() == pytest.approx(params, abs=1e-6)
        for row, x in xs.items():
            assert priors[index, 6 + row].item() == pytest.approx(x, abs=1e-6)
    assert priors[:, :2].abs().sum() == 0 and priors[:, 5].abs().sum() == 0
    expected_xs = (torch.linspace(0, 1, 36) * 71).long().tolist()
    assert expected_xs[:3] == [0, 2, 4] and expected_xs[-1] == 71
    heads = models("clrkdnet_resnet18_culane").heads
    assert heads.sample_x_indexs.tolist() == expected_xs
    assert torch.equal(heads.priors_on_featmap, priors[:, 6 + heads.sample_x_indexs])


def conv_bn_relu(module, x):
    """A reference ConvModule: its (9, 1) conv on (B*P, C, S, 1) pooled features, BN, ReLU."""
    return F.relu(module.bn(module.conv(x)))


def official_head(head, neck_maps):
    """The reference head's control flow, written out independently (per-stage recomputation of every ROI
    conv, repeated buffers, in-place assembly); the tested head caches and vectorises instead."""
    batch_features = list(neck_maps[len(neck_maps) - head.refine_layers :])
    batch_features.reverse()
    batch, num_priors = batch_features[-1].shape[0], head.num_priors
    priors = head.priors.repeat(batch, 1, 1)
    priors_on_featmap = head.priors_on_featmap.repeat(batch, 1, 1)
    roi_gather = head.roi_gather
    stages = []
    for stage in range(head.refine_layers):
        prior_xs = torch.flip(priors_on_featmap, dims=[2]).view(batch, num_priors, -1, 1)
        prior_ys = head.prior_feat_ys.repeat(batch * num_priors).view(batch, num_priors, -1, 1)
        grid = torch.cat((prior_xs * 2.0 - 1.0, prior_ys * 2.0 - 1.0), dim=-1)
        pooled = F.grid_sample(batch_features[stage], grid, align_corners=True).permute(0, 2, 1, 3)
        stages.append(pooled.reshape(batch * num_priors, 64, 36, 1))
        roi = torch.cat([conv_bn_relu(roi_gather.convs[i], feature) for i, feature in enumerate(stages)], 1)
        roi = conv_bn_relu(roi_gather.catconv[stage], roi).contiguous().view(batch * num_priors, -1)
        roi = F.relu(roi_gather.fc_norm(roi_gather.fc(roi))).view(batch, num_priors, -1)
        x = batch_features[stage]
        value = F.interpolate(roi_gather.f_value(x), size=(10, 25)).view(batch, 64, -1).permute(0, 2, 1)
        key = F.interpolate(roi_gather.f_key(x), size=(10, 25)).view(batch, 64, -1)
        attention = F.softmax((64**-0.5) * torch.matmul(roi_gather.f_query(roi), key), dim=-1)
        roi = roi + roi_gather.W(torch.matmul(attention, value))
        features = roi.view(num_priors, batch, -1).reshape(batch * num_priors, 64)
        cls = head.cls_layers(head.cls_modules(features)).reshape(batch, -1, 2)
        reg = head.reg_layers(head.reg_modules(features)).reshape(batch, -1, 76)
        predictions = priors.clone()
        predictions[:, :, :2] = cls
        predictions[:, :, 2:5] += reg[:, :, :3]
        predictions[:, :, 5] = reg[:, :, 3]

        def tran(t):
            return t.unsqueeze(2).clone().repeat(1, 1, 72)

        ys = head.prior_ys.repeat(batch, num_priors, 1)
        predictions[..., 6:] = (
            tran(predictions[..., 3]) * 799
            + (
                (1 - ys - tran(predictions[..., 2]))
                * 320
                / torch.tan(tran(predictions[..., 4]) * math.pi + 1e-5)
            )
        ) / 799
        lines = predictions.clone()
        predictions[..., 6:] += reg[..., 4:]
        if stage != head.refine_layers - 1:
            priors = lines.detach().clone()
            priors_on_featmap = priors[..., 6 + head.sample_x_indexs]
    return predictions, roi


@pytest.mark.parametrize("name", ["clrnet_resnet18_culane", "clrkdnet_resnet18_culane"])
def test_head_equals_reference_control_flow(name):
    head = build_model(name).heads.eval()
    randomize_(head)
    generator = torch.Generator().manual_seed(1)
    sizes = [(40, 100), (20, 50), (10, 25)][-head.refine_layers :]
    neck_maps = [torch.randn(2, 64, h, w, generator=generator) for h, w in sizes]
    with torch.no_grad():
        expected, expected_roi = official_head(head, neck_maps)
        ours = head(neck_maps)
        dictionary = head(neck_maps, return_dict=True)
    assert ours.shape == (2, 192, 78)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(dictionary["roi_features"], expected_roi, rtol=0, atol=1e-6)
    assert torch.equal(dictionary["predictions"][-1], ours)
    assert ours[0].ne(ours[1]).any()  # images of a batch are handled separately


def test_student_forward_eval_and_train(models):
    model = models("clrkdnet_resnet18_culane")
    x = torch.rand(1, 3, 320, 800, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        pred = model(x)
    assert pred.shape == (1, 192, 78) and torch.isfinite(pred).all()

    model.train()
    try:
        out = model(x)
    finally:
        model.eval()
    assert set(out) == {"predictions", "seg", "features", "roi_features", "stage_priors"}
    assert len(out["predictions"]) == 1 and out["predictions"][0].shape == (1, 192, 78)
    assert out["seg"].shape == (1, 5, 320, 800)
    assert [tuple(f.shape) for f in out["features"]] == [
        (1, 64, 80, 200),
        (1, 128, 40, 100),
        (1, 256, 20, 50),
        (1, 512, 10, 25),
    ]
    assert out["roi_features"].shape == (1, 192, 64)
    # the student's priors entering its only stage are the learnable embeddings, with gradient
    embeddings = model.heads.prior_embeddings.weight
    assert torch.equal(out["stage_priors"][0], embeddings)
    out["stage_priors"].sum().backward()
    assert torch.equal(embeddings.grad, torch.ones_like(embeddings))
    model.zero_grad(set_to_none=True)


def test_teacher_forward_eval_dict_and_train(models):
    model = models("clrnet_resnet18_culane")
    x = torch.rand(1, 3, 320, 800, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        pred = model(x)
        out = model(x, return_dict=True)  # how distillation runs the frozen teacher
    assert pred.shape == (1, 192, 78)
    assert len(out["predictions"]) == 3 and out["seg"] is None
    assert torch.equal(out["predictions"][-1], pred)
    assert out["roi_features"].shape == (1, 192, 64)
    # the priors entering stage 3 are stage 2's refined lines
    assert torch.equal(out["stage_priors"], out["predictions"][1][..., 2:5])

    model.train()
    try:
        out = model(x)
    finally:
        model.eval()
    assert [p.shape for p in out["predictions"]] == [(1, 192, 78)] * 3
    assert out["seg"].shape == (1, 5, 320, 800)
    assert not out["stage_priors"].requires_grad
    assert model(x[:, :, :, :], return_dict=False).shape == (1, 192, 78)


def test_dla_student_forward(models):
    model = models("clrkdnet_dla34_culane")
    with torch.inference_mode():
        features = model.backbone(torch.zeros(1, 3, 320, 800))
        pred = model(torch.zeros(1, 3, 320, 800))
    assert [tuple(f.shape) for f in features] == [
        (1, 64, 80, 200),
        (1, 128, 40, 100),
        (1, 256, 20, 50),
        (1, 512, 10, 25),
    ]
    assert pred.shape == (1, 192, 78)


def test_eval_uses_stored_priors_and_training_refreshes_them():
    model = build_model("clrkdnet_resnet18_culane").eval()
    heads = model.heads
    neck_maps = [torch.randn(1, 64, 10, 25, generator=torch.Generator().manual_seed(0))]
    with torch.no_grad():
        before = heads(neck_maps)
        heads.prior_embeddings.weight.add_(0.01)  # eval ignores the embeddings ...
        assert torch.equal(heads(neck_maps), before)
        heads.priors[:, 3] += 0.01  # ... and uses the buffers as loaded
        heads.priors_on_featmap.add_(0.01)
        assert not torch.equal(heads(neck_maps), before)

    heads.train()
    heads(neck_maps)  # training regenerates the buffers from the embeddings
    heads.eval()
    embeddings = heads.prior_embeddings.weight.detach()
    assert torch.equal(heads.priors[:, 2:5], embeddings)
    fresh = build_model("clrkdnet_resnet18_culane").heads
    with torch.no_grad():
        fresh.prior_embeddings.weight.copy_(embeddings)
    expected = fresh._generate_priors()
    assert torch.equal(heads.priors, expected[0]) and torch.equal(heads.priors_on_featmap, expected[1])


@pytest.mark.parametrize(
    "x",
    [
        torch.zeros(1, 3, 320, 640),
        torch.zeros(3, 320, 800),
        torch.zeros(1, 1, 320, 800),
        torch.zeros(1, 3, 320, 800, dtype=torch.uint8),
    ],
    ids=["width", "no-batch", "channels", "uint8"],
)
def test_wrong_input_raises_input_error(models, x):
    with pytest.raises(InputError, match=r"expected a float tensor of shape \(B, 3, 320, 800\)"):
        models("clrkdnet_resnet18_culane")(x)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_input_of_another_dtype_than_the_network_raises_input_error(models, dtype):
    x = torch.zeros(1, 3, 320, 800, dtype=dtype)
    with pytest.raises(InputError, match=rf"input is {dtype} on cpu but the network is torch.float32 on cpu"):
        models("clrkdnet_resnet18_culane")(x)


def test_decode_uses_preset_thresholds(models):
    model = models("clrkdnet_resnet18_culane")
    pred = model.heads.priors.clone().unsqueeze(0).repeat(2, 1, 1)
    pred[..., 5] = 0.5  # half the image height long
    pred[:, 30:40:2, 1] = 5.0  # a few confident lanes far enough apart not to be suppressed
    preset = model.preset
    lanes = decode_predictions(pred, preset.geometry, preset.test)
    expected = decode_predictions(pred, preset.geometry, TestConfig(0.4, 50, 4))
    assert len(lanes) == 2
    assert [[lane.score for lane in image] for image in lanes] == [
        [lane.score for lane in e] for e in expected
    ]
    assert 0 < len(lanes[0]) <= 4
    one_lane = dataclasses.replace(preset.test, max_lanes=1)
    assert len(decode_predictions(pred, preset.geometry, one_lane)[0]) == 1
    confident = dataclasses.replace(preset.test, conf_threshold=0.9999)
    assert decode_predictions(pred, preset.geometry, confident) == [[], []]


def _modules_loaded_by(module: str, prefix: str) -> list[str]:
    """The modules under ``prefix`` that a fresh interpreter has loaded after importing ``module``."""
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.startswith({prefix!r})))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    return json.loads(done.stdout.replace("'", '"'))


def test_the_network_and_the_post_processing_do_not_import_each_other():
    """postprocess used the head's priors and LaneNet.decode imported postprocess back: a hidden cycle."""
    assert _modules_loaded_by("clrkdnet_core.models", "clrkdnet_core.postprocess") == []
    assert _modules_loaded_by("clrkdnet_core.postprocess", "clrkdnet_core.models") == []


def test_pretrained_backbone_is_loaded_from_a_local_file(tmp_path):
    imagenet = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(imagenet.state_dict(), path)  # includes fc.*, which the backbone does not have
    model = build_model("clrkdnet_resnet18_culane", pretrained_backbone=path)
    assert torch.equal(model.backbone.model.layer4[1].conv2.weight, imagenet.layer4[1].conv2.weight)
    assert torch.equal(model.backbone.model.bn1.running_var, imagenet.bn1.running_var)

    with pytest.raises(CheckpointError, match="no weights that fit"):
        build_model("clrkdnet_dla34_culane", pretrained_backbone=path)
    with pytest.raises(CheckpointError, match="no such file"):
        build_model("clrkdnet_resnet18_culane", pretrained_backbone=tmp_path / "absent.pth")
