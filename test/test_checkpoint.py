"""Checkpoints: official-format files load strictly, our files round-trip, bad files give one clear error."""

import json
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from clrkdnet_core.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from clrkdnet_core.config import available_presets
from clrkdnet_core.errors import CheckpointError
from clrkdnet_core.models import build_model

REFERENCE = Path(__file__).parent / "data" / "reference"
REFERENCE_PRESETS = sorted(p.name for p in REFERENCE.iterdir() if (p / "manifest.json").is_file())
OTHER_PRESETS = sorted(set(available_presets()) - set(REFERENCE_PRESETS))

DTYPES = {"float32": torch.float32, "int64": torch.int64}


def official_checkpoint(name: str, path: Path) -> dict[str, torch.Tensor]:
    """Write a file laid out like a released checkpoint of ``name``: random tensors of the manifest's shapes,
    the reference buffers, keys prefixed ``module.`` under ``net``, plus the trainer's other entries."""
    manifest = json.loads((REFERENCE / name / "manifest.json").read_text())
    buffers = np.load(REFERENCE / name / "buffers.npz")
    generator = torch.Generator().manual_seed(0)
    state = {}
    for entry in manifest["keys"]:
        key, shape, dtype = entry["key"], entry["shape"], DTYPES[entry["dtype"]]
        if key in buffers:
            state[key] = torch.from_numpy(buffers[key])
        elif dtype == torch.int64:
            state[key] = torch.randint(0, 1000, shape, generator=generator)
        else:
            state[key] = torch.randn(shape, generator=generator)
    torch.save(
        {
            "net": {"module." + key: value for key, value in state.items()},
            "optim": {"state": {}, "param_groups": [{"lr": 6e-4, "params": [0, 1]}]},
            "recorder": {"step": 100},
            "epoch": 14,
        },
        path,
    )
    return state


@pytest.mark.parametrize("name", REFERENCE_PRESETS)
def test_official_checkpoint_loads_strictly(tmp_path, name):
    path = tmp_path / f"{name}.pth"
    expected = official_checkpoint(name, path)
    model = build_model(name)
    extra = load_checkpoint(model, path)
    assert extra["epoch"] == 14 and extra["recorder"] == {"step": 100} and "net" not in extra
    state = model.state_dict()
    assert list(state) == list(expected)
    for key, value in expected.items():
        assert torch.equal(state[key], value), key


@pytest.mark.parametrize("name", OTHER_PRESETS)
def test_round_trip_of_presets_without_reference(tmp_path, name):
    torch.manual_seed(1)
    model = build_model(name)
    path = save_checkpoint(tmp_path / "weights" / "model.pth", model, epoch=3)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw["preset"] == name and raw["epoch"] == 3
    assert all(key.startswith("module.") for key in raw["net"])
    torch.manual_seed(2)
    other = build_model(name)
    assert load_checkpoint(other, path) == {"preset": name, "epoch": 3}
    for (key, value), loaded in zip(model.state_dict().items(), other.state_dict().values(), strict=True):
        assert torch.equal(value, loaded), key
    assert [p.name for p in path.parent.iterdir()] == ["model.pth"]  # no temporary file left behind


def test_plain_state_dict_and_prefixless_keys_load(tmp_path):
    source = build_model("clrkdnet_resnet18_culane")
    path = tmp_path / "plain.pth"
    torch.save(source.state_dict(), path)
    target = build_model("clrkdnet_resnet18_culane")
    assert load_checkpoint(target, path) == {}
    assert torch.equal(target.heads.reg_layers.weight, source.heads.reg_layers.weight)


def test_checkpoint_of_another_preset_names_the_mismatches(tmp_path):
    path = save_checkpoint(tmp_path / "teacher.pth", build_model("clrnet_resnet18_culane"))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(build_model("clrkdnet_resnet18_culane"), path)
    message = str(info.value)
    assert str(path) in message
    assert "saved for preset 'clrnet_resnet18_culane', the network is 'clrkdnet_resnet18_culane'" in message
    assert "mis-shaped (" in message
    assert "neck.lateral_convs.0.conv.weight (64, 128, 1, 1) != (64, 512, 1, 1)" in message
    assert "heads.seg_decoder.conv.weight (5, 192, 1, 1) != (5, 64, 1, 1)" in message
    assert "32 unexpected (" in message and "neck.lateral_convs.1.conv.weight" in message
    assert "missing" not in message


def test_missing_and_unexpected_keys_are_counted_and_listed(tmp_path):
    model = build_model("clrkdnet_resnet18_culane")
    state = {"module." + key: value for key, value in model.state_dict().items()}
    removed = [key for key in state if ".layer4." in key]
    for key in removed:
        del state[key]
    state["module.heads.extra.weight"] = torch.zeros(1)
    path = tmp_path / "partial.pth"
    torch.save({"net": state}, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(model, path)
    message = str(info.value)
    assert f"{len(removed)} missing (backbone.model.layer4.0.conv1.weight, " in message
    assert message.count("backbone.model.layer4") == 10 and ", ...)" in message  # at most 10 listed
    assert "1 unexpected (heads.extra.weight)" in message


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(build_model("clrkdnet_resnet18_culane"), tmp_path / "absent.pth")


def test_truncated_file(tmp_path):
    model = build_model("clrkdnet_resnet18_culane")
    path = save_checkpoint(tmp_path / "model.pth", model)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or not a PyTorch checkpoint") as info:
        load_checkpoint(model, path)
    assert str(path) in str(info.value)


class Foreign:
    """Stands for any Python object a checkpoint should not contain."""


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (lambda path: path.write_bytes(np.random.default_rng(0).bytes(4096)), "truncated or not a PyTorch"),
        (lambda path: path.write_text("net: weights\n"), "truncated or not a PyTorch"),
        (
            lambda path: path.write_bytes(pickle.dumps({"net": Foreign()}, protocol=2)),
            r"test_checkpoint\.Foreign\), not only",
        ),
        (lambda path: torch.save({"net": Foreign()}, path), "refusing to unpickle"),
        (lambda path: torch.save([torch.zeros(1)], path), "holds a list, not a dict"),
        (lambda path: torch.save({"epoch": 3}, path), "holds no model weights"),
        (lambda path: torch.save({"net": {}}, path), "holds no model weights"),
    ],
    ids=["random-bytes", "text", "pickle", "foreign-object", "list", "no-weights", "empty"],
)
def test_foreign_files(tmp_path, content, message):
    path = tmp_path / "foreign.pth"
    content(path)
    with pytest.raises(CheckpointError, match=message) as info:
        read_checkpoint(path)
    assert str(path) in str(info.value)


def test_garbage_bytes_always_give_a_checkpoint_error(tmp_path):
    """Short byte strings send the unpickler into KeyError, IndexError, struct.error, ...: all reported."""
    rng = np.random.default_rng(1)
    path = tmp_path / "garbage.pth"
    samples = [b"hello", b"\x80\x02h\x01", b"\x80\x05\x95"]
    samples += [rng.bytes(int(rng.integers(1, 48))) for _ in range(150)]
    samples += [b"\x80\x02" + rng.bytes(int(rng.integers(1, 48))) for _ in range(150)]
    for sample in samples:
        path.write_bytes(sample)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about unknown pickle protocols
            with pytest.raises(CheckpointError, match=r"garbage\.pth"):
                read_checkpoint(path)


def test_save_is_atomic_and_keeps_the_old_file_on_failure(tmp_path):
    model = build_model("clrkdnet_resnet18_culane")
    path = save_checkpoint(tmp_path / "model.pth", model, epoch=1)
    with pytest.raises(Exception):  # noqa: B017 (any pickling error)
        save_checkpoint(path, model, epoch=2, callback=lambda: None)
    assert torch.load(path, weights_only=True)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["model.pth"]
