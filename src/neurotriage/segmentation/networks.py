"""The segmentation networks, chosen by name (`--arch`), each rebuilt from plain keyword arguments.

Every network returns raw logits of shape (B, out_channels, X, Y, Z); the softmax (or, for
region outputs, the sigmoid) is applied by the loss and at inference. A checkpoint stores the
architecture name and its exact keyword arguments, so `build_model` can rebuild it alone.
The networks' own modules (torch, MONAI) are imported when one is built, so the CLI can offer
the architectures by name without loading torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from neurotriage.errors import UserError

if TYPE_CHECKING:
    from torch import nn

DEFAULT_ARCH = "fastunet"


def _widths(width: int, levels: int = 5) -> list[int]:
    return [width * 2**i for i in range(levels)]


def _build_unet3d(cin: int, cout: int, kw: dict) -> nn.Module:
    from neurotriage.segmentation.unet3d import UNet3D  # torch: only when a network is built (start-up time)

    return UNet3D(cin, cout, tuple(kw["filters"]), tuple(kw["dropout"]))


def _build_fastunet(cin: int, cout: int, kw: dict) -> nn.Module:
    from monai.networks.nets import UNet  # MONAI: only when this network is built (start-up time)

    return UNet(3, cin, cout, channels=kw["channels"], strides=kw["strides"], num_res_units=kw["num_res_units"])


def _build_segresnet(cin: int, cout: int, kw: dict) -> nn.Module:
    from monai.networks.nets import SegResNet  # MONAI: only when this network is built (start-up time)

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
    from monai.networks.nets import DynUNet  # MONAI: only when this network is built (start-up time)

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
