"""torchvision ResNet-18/34/50/101 without the classifier, returning the outputs of its four stages."""

from pathlib import Path

import torchvision
from torch import Tensor, nn

from clrkdnet_core.models.backbones.imagenet import load_imagenet_weights

_RESNETS = {
    "resnet18": torchvision.models.resnet18,
    "resnet34": torchvision.models.resnet34,
    "resnet50": torchvision.models.resnet50,
    "resnet101": torchvision.models.resnet101,
}


class ResNetBackbone(nn.Module):
    """ResNet stem + layer1..layer4 under ``model`` (the official key prefix is ``backbone.model.``).

    ``pretrained``: a local ImageNet weights file (torchvision layout), loaded strictly but for the classifier
    ``fc.*`` (:func:`~clrkdnet_core.models.backbones.imagenet.load_imagenet_weights`); never downloaded.
    """

    def __init__(self, name: str, pretrained: str | Path | None = None) -> None:
        super().__init__()
        self.model = _RESNETS[name](weights=None)
        del self.model.avgpool, self.model.fc
        expansion = 4 if name in ("resnet50", "resnet101") else 1
        self.out_channels = [64 * expansion, 128 * expansion, 256 * expansion, 512 * expansion]
        if pretrained is not None:
            load_imagenet_weights(self.model, pretrained, name)

    def forward(self, x: Tensor) -> list[Tensor]:
        m = self.model
        x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        features = []
        for layer in (m.layer1, m.layer2, m.layer3, m.layer4):
            x = layer(x)
            features.append(x)
        return features
