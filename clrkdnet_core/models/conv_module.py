"""Conv2d with optional BatchNorm and ReLU, named like mmcv's ConvModule so official weights load as is."""

from torch import Tensor, nn


class ConvModule(nn.Module):
    """``conv`` (+ ``bn``) (+ ReLU); the conv has a bias only without norm (mmcv's ``bias='auto'``)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        padding: int | tuple[int, int] = 0,
        norm: bool = False,
        activation: bool = False,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=not norm)
        self.bn = nn.BatchNorm2d(out_channels) if norm else None
        self.activate = nn.ReLU(inplace=True) if activation else None
        # mmcv's default initialisation (the official models are trained from it)
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_out", nonlinearity="relu")
        if self.conv.bias is not None:
            nn.init.zeros_(self.conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.activate is not None:
            x = self.activate(x)
        return x
