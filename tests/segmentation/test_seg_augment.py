"""Augmentations: thick slices (one axis of a channel blurred) and per-channel bias fields."""

import torch

from neurotriage.segmentation.augment import RandChannelBiasFieldd, RandThickSlicesd


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


def _thick_axis(volume: torch.Tensor) -> int:
    rough = _roughness(volume)
    return rough.index(min(rough))


def test_axial_prob_picks_the_axial_axis_that_often():
    image = torch.randn(1, 24, 24, 24, generator=torch.Generator().manual_seed(1))
    for axial_prob, low, high in ((1.0, 40, 40), (0.0, 0, 0), (0.6, 16, 32)):
        transform = RandThickSlicesd("image", prob=1.0, channel_prob=1.0, factor=(4, 4), axial_prob=axial_prob)
        transform.set_random_state(3)
        axes = [_thick_axis(transform({"image": image})["image"][0]) for _ in range(40)]
        assert low <= axes.count(2) <= high
        assert set(axes) <= {0, 1, 2} and (axial_prob == 1.0 or {0, 1} <= set(axes))


def test_probability_zero_leaves_the_image_alone():
    transform = RandThickSlicesd("image", prob=0.0)
    image = torch.randn(2, 16, 16, 16)
    assert torch.equal(transform({"image": image})["image"], image)


def test_channel_bias_fields_shade_brain_channels_independently_and_keep_background():
    transform = RandChannelBiasFieldd("image", prob=1.0, channel_prob=1.0, coeff_range=(0.3, 0.3))
    transform.set_random_state(0)
    image = torch.zeros(3, 24, 24, 24)
    image[:, 4:20, 4:20, 4:20] = 0.5  # a uniform "brain" in a zero background
    out = transform({"image": image})["image"]
    brain = image[0] != 0
    assert torch.all(out[:, ~brain] == 0)
    changes = [out[c][brain] - image[c][brain] for c in range(3)]
    assert all(change.std() > 0.05 for change in changes)  # each channel really shaded, smoothly varying
    assert not torch.allclose(changes[0], changes[1], atol=1e-3)  # and not with one shared field


def test_channel_bias_fields_are_reproducible_from_the_seed():
    image = torch.randn(2, 16, 16, 16)
    runs = [RandChannelBiasFieldd("image", prob=1.0, channel_prob=1.0).set_random_state(7) for _ in range(2)]
    first, second = (t({"image": image})["image"] for t in runs)
    assert torch.equal(first, second)
