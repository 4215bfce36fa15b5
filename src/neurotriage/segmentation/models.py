"""The segmentation networks, chosen by name (`--arch`), each rebuilt from plain keyword arguments.

Every network returns raw logits of shape (B, out_channels, X, Y, Z); the softmax (or, for
region outputs, the sigmoid) is applied by the loss and at inference. A checkpoint stores the
architecture name and its exact keyword arguments, so `build_model` can rebuild it alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from neurotriage.errors import UserError

DEFAULT_ARCH = "fastunet"


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


def _widths(width: int, levels: int = 5) -> list[int]:
    return [width * 2**i for i in range(levels)]


def _build_unet3d(cin: int, cout: int, kw: dict) -> nn.Module:
    return UNet3D(cin, cout, tuple(kw["filters"]), tuple(kw["dropout"]))


def _build_fastunet(cin: int, cout: int, kw: dict) -> nn.Module:
    from monai.networks.nets import UNet

    return UNet(3, cin, cout, channels=kw["channels"], strides=kw["strides"], num_res_units=kw["num_res_units"])


def _build_segresnet(cin: int, cout: int, kw: dict) -> nn.Module:
    from monai.networks.nets import SegResNet

    return SegResNet(
        spatial_dims=3,
        init_filters=kw["init_filters"],
        in_channels=cin,
        out_channels=cout,
        dropout_prob=kw["dropout_prob"],
        blocks_down=tuple(kw["blocks_down"]),
        blocks_up=tuple(kw["blocks_up"]),
        norm=("GROUP", {"num_groups": math.gcd(8, kw["init_filters"])}),  # groups must divide channels
    )


def _build_dynunet(cin: int, cout: int, kw: dict) -> nn.Module:
    from monai.networks.nets import DynUNet

    return DynUNet(
        3,
        cin,
        cout,
        kernel_size=kw["kernel_size"],
        strides=kw["strides"],
        upsample_kernel_size=kw["strides"][1:],
        filters=kw["filters"],
        res_block=kw["res_block"],
    )


@dataclass(frozen=True)
class Arch:
    """One selectable architecture: how to build it, its defaults for a base width, its size divisor."""

    summary: str
    build: Callable[[int, int, dict], nn.Module]
    defaults: Callable[[int], dict]
    default_width: int
    divisor: Callable[[dict], int]


ARCHS: dict[str, Arch] = {
    "fastunet": Arch(
        "MONAI UNet, residual units, strided convolutions (the fast CPU default)",
        _build_fastunet,
        lambda w: {"channels": _widths(w), "strides": [2, 2, 2, 2], "num_res_units": 2},
        16,
        lambda kw: math.prod(kw["strides"]),
    ),
    "unet3d": Arch(
        "classic 3D U-Net (Keras BraTS recipe)",
        _build_unet3d,
        lambda w: {"filters": _widths(w), "dropout": [0.1, 0.1, 0.2, 0.2, 0.3]},
        16,
        lambda kw: 2 ** (len(kw["filters"]) - 1),
    ),
    "segresnet": Arch(
        "MONAI SegResNet (Myronenko 2018)",
        _build_segresnet,
        lambda w: {"init_filters": w, "dropout_prob": 0.2, "blocks_down": [1, 2, 2, 4], "blocks_up": [1, 1, 1]},
        16,
        lambda kw: 2 ** (len(kw["blocks_down"]) - 1),
    ),
    "dynunet": Arch(
        "MONAI DynUNet (nnU-Net-like)",
        _build_dynunet,
        lambda w: {
            "kernel_size": [3] * 5,
            "strides": [1, 2, 2, 2, 2],
            "filters": [min(f, 320) for f in _widths(w)],
            "res_block": False,
        },
        32,
        lambda kw: math.prod(kw["strides"]),
    ),
}


def arch_kwargs(arch: str, width: int | None = None) -> dict:
    """Default keyword arguments of `arch` for a base width (its default width when None)."""
    spec = _spec(arch)
    if width is not None and width < 1:
        raise UserError(f"width {width} must be a positive number of filters", field="width")
    return spec.defaults(width or spec.default_width)


def build_model(arch: str, in_channels: int, out_channels: int, kwargs: dict) -> nn.Module:
    """Instantiate `arch` with exactly these keyword arguments (as saved in a checkpoint)."""
    return _spec(arch).build(in_channels, out_channels, kwargs)


def size_divisor(arch: str, kwargs: dict) -> int:
    """Input sides must be multiples of this (the product of the downsampling strides)."""
    return _spec(arch).divisor(kwargs)


def _spec(arch: str) -> Arch:
    if arch not in ARCHS:
        raise UserError(f"unknown architecture '{arch}' (choose from {', '.join(ARCHS)})")
    return ARCHS[arch]
