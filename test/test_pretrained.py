"""ImageNet backbone weights: strict loading of torchvision and DLA-zoo files (classifier ignored), torch's
hub cache, and the random fallback that says so."""

import pytest
import torch
import torchvision

from clrkdnet_core.errors import CheckpointError
from clrkdnet_core.models import build_model
from clrkdnet_core.models.backbones.dla import DLA
from clrkdnet_core.models.backbones.imagenet import IMAGENET_URLS, imagenet_cache_path
from training.pretrained import resolve_backbone_init


def _torchvision_file(path, arch: str = "resnet18"):
    """A file of the layout torchvision publishes (with the fc classifier), with random weights."""
    net = getattr(torchvision.models, arch)(weights=None)
    torch.save(net.state_dict(), path)
    return net


def _dla_zoo_file(path):
    """A DLA-34 file of the model zoo's layout: our module's names (the zoo's own), the 1000-class 1x1-conv
    classifier, and no BatchNorm counters (the zoo's files predate them)."""
    net = DLA(levels=[1, 1, 1, 2, 2, 1], channels=[16, 32, 64, 128, 256, 512])
    state = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    state["fc.weight"] = torch.randn(1000, 512, 1, 1)
    state["fc.bias"] = torch.randn(1000)
    torch.save(state, path)
    return net


def test_a_torchvision_file_loads_every_backbone_weight(tmp_path):
    imagenet = _torchvision_file(tmp_path / "resnet18-f37072fd.pth")
    model = build_model("clrkdnet_resnet18_culane", pretrained_backbone=tmp_path / "resnet18-f37072fd.pth")
    expected = {k: v for k, v in imagenet.state_dict().items() if not k.startswith("fc.")}
    loaded = model.backbone.model.state_dict()
    assert loaded.keys() == expected.keys()
    assert all(torch.equal(loaded[k], v) for k, v in expected.items())


def test_a_dla_zoo_file_loads_into_the_dla_backbone(tmp_path):
    zoo = _dla_zoo_file(tmp_path / "dla34-ba72cf86.pth")
    model = build_model("clrkdnet_dla34_culane", pretrained_backbone=tmp_path / "dla34-ba72cf86.pth")
    loaded = model.backbone.model.state_dict()
    for key, value in zoo.state_dict().items():
        if not key.endswith("num_batches_tracked"):
            assert torch.equal(loaded[key], value), key


def test_missing_extra_or_foreign_backbone_weights_are_errors(tmp_path):
    _torchvision_file(tmp_path / "r34.pth", "resnet34")  # every R18 name is in R34: extra blocks only
    with pytest.raises(CheckpointError, match=r"not resnet18 ImageNet weights: \d+ unexpected \(layer1.2"):
        build_model("clrkdnet_resnet18_culane", pretrained_backbone=tmp_path / "r34.pth")
    state = torchvision.models.resnet18(weights=None).state_dict()
    del state["layer4.1.conv2.weight"]
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(CheckpointError, match=r"1 missing \(layer4.1.conv2.weight\)"):
        build_model("clrkdnet_resnet18_culane", pretrained_backbone=tmp_path / "partial.pth")
    with pytest.raises(CheckpointError, match="no weights that fit the dla34 backbone"):
        build_model("clrkdnet_dla34_culane", pretrained_backbone=tmp_path / "r34.pth")


def test_the_hub_cache_is_used_under_torchvisions_file_name(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cached = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert imagenet_cache_path("resnet18") == cached
    cached.parent.mkdir(parents=True)
    _torchvision_file(cached)
    init = resolve_backbone_init("imagenet", "resnet18")
    assert init.path == cached and str(cached) in init.description
    build_model("clrkdnet_resnet18_culane", pretrained_backbone=init.path)
    # torchvision's earlier name for the same weights is found too
    earlier = cached.with_name("resnet18-5c106cde.pth")
    cached.rename(earlier)
    assert resolve_backbone_init("imagenet", "resnet18").path == earlier


def test_no_weights_and_no_network_fall_back_to_random_and_say_so(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    # a port nobody listens on: the download fails at once, as without a network
    monkeypatch.setitem(IMAGENET_URLS, "resnet18", "http://127.0.0.1:9/resnet18-f37072fd.pth")
    init = resolve_backbone_init("imagenet", "resnet18")
    assert init.path is None
    assert init.description.startswith("random initialisation: no ImageNet weights for resnet18")
    assert "download failed" in init.description
    assert not imagenet_cache_path("resnet18").exists()
    assert resolve_backbone_init("imagenet", "resnet18", download=False).path is None
    assert resolve_backbone_init("none", "resnet18").description.startswith("random initialisation")
    with pytest.raises(CheckpointError, match=r"absent\.pth: no such file"):
        resolve_backbone_init(str(tmp_path / "absent.pth"), "resnet18")
