"""CLRKDNet's Aggregator neck (student): only the stride-32 map, a 1x1 then a 3x3 conv, no top-down path."""

from torch import Tensor, nn

from clrkdnet_core.models.conv_module import ConvModule


class Aggregator(nn.Module):
    """Maps the last backbone map (e.g. 512 x 10 x 25) to ``out_channels``; returns a one-element list."""

    def __init__(self, in_channels: int, out_channels: int = 64) -> None:
        super().__init__()
        # the official names (shared with the FPN) keep the checkpoint keys
        self.lateral_convs = nn.ModuleList([ConvModule(in_channels, out_channels, 1)])
        self.fpn_convs = nn.ModuleList([ConvModule(out_channels, out_channels, 3, padding=1)])

    def forward(self, features: list[Tensor]) -> list[Tensor]:
        return [self.fpn_convs[0](self.lateral_convs[0](features[-1]))]
