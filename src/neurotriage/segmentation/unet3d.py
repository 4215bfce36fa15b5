"""The classic 3D U-Net of the Keras BraTS recipe, as a plain `nn.Module` (the `unet3d` architecture)."""

from __future__ import annotations

import torch
from torch import nn


class DoubleConv(nn.Sequential):
    """Two 3×3×3 convolutions with ReLU and dropout between them (one level of the classic U-Net)."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float) -> None:
        super().__init__(
            nn.Conv3d(in_channels, out_channels, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Dropout3d(dropout),
            nn.Conv3d(out_channels, out_channels, 3, padding=1),
            nn.ReLU(inplace=True),
        )


class UNet3D(nn.Module):
    """The classic 3D U-Net of the Keras BraTS recipe.

    Args:
        in_channels: input sequences (3 for the classic recipe, 4 for standard).
        out_channels: classes (4: background, core, edema, enhancing).
        filters: filters per level, top to bottom (16-32-64-128-256).
        dropout: dropout per level, top to bottom (0.1/0.1/0.2/0.2/0.3); the decoder mirrors it.

    Max-pooling goes down, transposed convolutions go up, skips are concatenated. The softmax
    over classes of the original is applied by the loss and at inference (logits out).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        filters: tuple[int, ...] = (16, 32, 64, 128, 256),
        dropout: tuple[float, ...] = (0.1, 0.1, 0.2, 0.2, 0.3),
    ) -> None:
        super().__init__()
        if len(filters) != len(dropout):
            raise ValueError("filters and dropout need one entry per level")
        ins = (in_channels, *filters[:-1])
        self.encoder = nn.ModuleList(DoubleConv(i, f, d) for i, f, d in zip(ins, filters, dropout, strict=True))
        self.pool = nn.MaxPool3d(2)
        levels = range(len(filters) - 2, -1, -1)  # from the level above the bottom up to the top
        self.up = nn.ModuleList(nn.ConvTranspose3d(filters[i + 1], filters[i], 2, stride=2) for i in levels)
        self.decoder = nn.ModuleList(DoubleConv(2 * filters[i], filters[i], dropout[i]) for i in levels)
        self.head = nn.Conv3d(filters[0], out_channels, 1)
        for module in self.modules():
            if isinstance(module, nn.Conv3d | nn.ConvTranspose3d):  # Keras' he_uniform
                nn.init.kaiming_uniform_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, out_channels, ...) for an input whose sides are multiples of 2**(levels-1)."""
        skips = []
        for depth, block in enumerate(self.encoder):
            x = block(x)
            if depth < len(self.encoder) - 1:
                skips.append(x)
                x = self.pool(x)
        for up, block in zip(self.up, self.decoder, strict=True):
            x = block(torch.cat([skips.pop(), up(x)], dim=1))
        return self.head(x)
