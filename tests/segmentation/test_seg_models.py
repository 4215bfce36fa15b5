"""Architectures (shapes, the classic U-Net's exact layout) and the Dice + focal loss."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from torch import nn

from neurotriage.errors import UserError
from neurotriage.segmentation.losses import (
    LossConfig,
    SegLoss,
    labels_from_probabilities,
    probabilities,
    regions_from_labels,
)
from neurotriage.segmentation.networks import ARCHS, arch_kwargs, build_model, size_divisor
from neurotriage.segmentation.unet3d import UNet3D


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_every_arch_maps_input_to_logits_of_the_same_size(arch):
    kwargs = arch_kwargs(arch, width=4)
    model = build_model(arch, 3, 4, kwargs).eval()
    side = size_divisor(arch, kwargs) * 2
    with torch.no_grad():
        out = model(torch.randn(1, 3, side, side, side))
    assert out.shape == (1, 4, side, side, side)


def test_classic_unet3d_layout():
    model = UNet3D(4, 4)
    convs = [m for m in model.encoder.modules() if isinstance(m, nn.Conv3d)]
    assert [c.out_channels for c in convs] == [16, 16, 32, 32, 64, 64, 128, 128, 256, 256]
    assert all(c.kernel_size == (3, 3, 3) for c in convs)
    assert [m.p for m in model.encoder.modules() if isinstance(m, nn.Dropout3d)] == [0.1, 0.1, 0.2, 0.2, 0.3]
    assert [m.p for m in model.decoder.modules() if isinstance(m, nn.Dropout3d)] == [0.2, 0.2, 0.1, 0.1]
    assert isinstance(model.pool, nn.MaxPool3d)
    assert [(u.in_channels, u.out_channels, u.stride) for u in model.up] == [
        (256, 128, (2, 2, 2)),
        (128, 64, (2, 2, 2)),
        (64, 32, (2, 2, 2)),
        (32, 16, (2, 2, 2)),
    ]
    # Concatenated skips: each decoder level takes twice its filters.
    assert [block[0].in_channels for block in model.decoder] == [256, 128, 64, 32]
    assert model.head.out_channels == 4
    assert sum(isinstance(m, nn.ReLU) for m in model.modules()) == 18


CLI_ARCHS = """
import json, sys
from neurotriage.cli import build_parser
commands = build_parser()._subparsers._group_actions[0].choices
arch = next(a for a in commands["train"]._actions if a.dest == "arch")
print(json.dumps({"choices": list(arch.choices), "torch": "torch" in sys.modules}))
"""


def test_cli_offers_every_arch_without_importing_torch():
    result = subprocess.run([sys.executable, "-c", CLI_ARCHS], capture_output=True, text=True, check=True)
    offered = json.loads(result.stdout)
    assert offered == {"choices": list(ARCHS), "torch": False}


def test_unknown_arch_and_bad_width_are_user_errors():
    with pytest.raises(UserError, match="unknown architecture 'vnet'"):
        arch_kwargs("vnet")
    with pytest.raises(UserError, match="width -1 must be a positive number") as refused:
        arch_kwargs("fastunet", width=-1)
    assert refused.value.field == "width"


def _labels() -> torch.Tensor:
    labels = torch.zeros(1, 1, 8, 8, 8, dtype=torch.uint8)
    labels[0, 0, 2:6, 2:6, 2:6] = 2
    labels[0, 0, 3:5, 3:5, 3:5] = 1
    labels[0, 0, 4, 4, 4] = 3
    return labels


def test_loss_rewards_correct_logits_in_both_modes():
    labels = _labels()
    onehot = torch.nn.functional.one_hot(labels[:, 0].long(), 4).permute(0, 4, 1, 2, 3).float()
    loss = SegLoss(LossConfig("labels"))
    assert loss(onehot * 20 - 10, labels) < 0.05 < loss(torch.zeros_like(onehot), labels)
    regions = regions_from_labels(labels)
    assert regions.shape == (1, 3, 8, 8, 8)
    assert regions[0, 0].sum() == (labels > 0).sum() and regions[0, 2].sum() == 1
    region_loss = SegLoss(LossConfig("regions"))
    assert region_loss(regions * 20 - 10, labels) < 0.05 < region_loss(torch.zeros_like(regions), labels)


def test_class_weights_are_configurable_and_checked():
    labels = _labels()
    logits = torch.randn(1, 4, 8, 8, 8, generator=torch.Generator().manual_seed(0))
    equal = SegLoss(LossConfig("labels"))(logits, labels)
    doubled = SegLoss(LossConfig("labels", weights=(0.5, 0.5, 0.5, 0.5)))(logits, labels)
    assert torch.isclose(doubled, 2 * equal, rtol=1e-5)
    assert LossConfig("labels").resolved_weights() == [0.25] * 4
    with pytest.raises(UserError, match="class weights: 2 given") as refused:
        LossConfig("labels", weights=(1.0, 1.0)).resolved_weights()
    assert refused.value.field == "class_weights"


def test_region_probabilities_decode_to_nested_labels():
    labels = _labels()
    regions = regions_from_labels(labels)
    decoded = labels_from_probabilities(probabilities(regions * 20 - 10, "regions"), "regions")
    assert torch.equal(decoded, labels[:, 0])
