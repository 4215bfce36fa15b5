"""Thick-slice augmentation: one axis of a channel blurred, the others left sharp."""

import torch

from neurotriage.segmentation.augment import RandThickSlicesd


def _roughness(volume: torch.Tensor) -> list[float]:
    return [volume.diff(dim=axis).abs().mean().item() for axis in range(3)]


def test_each_thickened_channel_is_blurred_along_one_axis_only():
    transform = RandThickSlicesd("image", prob=1.0, channel_prob=1.0, factor=(4, 4))
    transform.set_random_state(0)
    generator = torch.Generator().manual_seed(0)
    image = torch.randn(4, 32, 32, 32, generator=generator)
    label = torch.randint(0, 4, (1, 32, 32, 32), generator=generator)
    out = transform({"image": image, "label": label})
    assert out["image"].shape == image.shape and torch.equal(out["label"], label)
    for c in range(4):
        rough = sorted(_roughness(out["image"][c]))
        assert rough[0] < 0.4 * rough[1]  # smooth across the thick slices...
        assert rough[1] > 0.9 * rough[2]  # ...and as rough as before within them


def test_probability_zero_leaves_the_image_alone():
    transform = RandThickSlicesd("image", prob=0.0)
    image = torch.randn(2, 16, 16, 16)
    assert torch.equal(transform({"image": image})["image"], image)
