"""BatchNorm folding: same outputs, no BatchNorm left, and the torch backend equals the eager network."""

import copy

import pytest
import torch
from torch import nn

from clrkdnet_core.backends.torch_backend import TorchBackend
from clrkdnet_core.models import build_model
from clrkdnet_core.models.fusion import fold_batch_norms


def _model_with_trained_statistics(preset: str) -> nn.Module:
    torch.manual_seed(0)
    model = build_model(preset).eval()
    # Fresh BatchNorms are the identity; give them statistics like a trained network's.
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    return model


@pytest.mark.parametrize("preset", ["clrkdnet_resnet18_culane", "clrkdnet_dla34_culane"])
def test_folded_network_gives_the_same_prediction(preset):
    model = _model_with_trained_statistics(preset)
    folded = copy.deepcopy(model)
    count = fold_batch_norms(folded)
    assert count == sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    x = torch.rand(1, 3, 320, 800, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected, actual = model(x), folded(x)
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4)


def test_folding_refuses_a_model_in_training_mode():
    with pytest.raises(ValueError, match="eval mode"):
        fold_batch_norms(build_model("clrkdnet_resnet18_culane").train())


def test_torch_backend_defaults_match_the_eager_network():
    model = _model_with_trained_statistics("clrkdnet_resnet18_culane")
    x = torch.rand(2, 3, 320, 800, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        expected = model(x)
    backend = TorchBackend(copy.deepcopy(model), "cpu")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in backend.model.modules())
    torch.testing.assert_close(backend(x), expected, rtol=1e-4, atol=1e-4)
