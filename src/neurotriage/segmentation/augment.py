"""Augmentations MONAI lacks: one sequence acquired with thick slices, as in many real BraTS cases."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.transforms import MapTransform, RandomizableTransform


class RandThickSlicesd(RandomizableTransform, MapTransform):
    """Per channel, average `factor` slices along one random axis and interpolate back.

    BraTS resamples every sequence to 1 mm, but a sequence acquired with 4-6 mm slices stays blurred
    along one axis only, often in just one of the four sequences (the real shared case's T1 looks
    like that). MONAI's RandSimulateLowResolution treats all channels and axes alike, so it cannot
    teach this.
    """

    def __init__(self, keys, prob: float = 0.3, channel_prob: float = 0.4, factor: tuple[float, float] = (2, 6)):
        """`factor`: range of slice thickness in voxels; `channel_prob`: chance each channel is thickened."""
        MapTransform.__init__(self, keys)
        RandomizableTransform.__init__(self, prob)
        self.channel_prob, self.factor = channel_prob, factor

    def __call__(self, data: dict) -> dict:
        """Thicken the slices of a random subset of the image's channels."""
        self.randomize(None)
        if not self._do_transform:
            return data
        out = dict(data)
        for key in self.key_iterator(out):
            image = torch.as_tensor(out[key]).clone()
            for c in range(image.shape[0]):
                if self.R.random() < self.channel_prob:
                    image[c] = self._thicken(image[c])
            out[key] = image
        return out

    def _thicken(self, volume: torch.Tensor) -> torch.Tensor:
        shape = tuple(volume.shape)
        axis = int(self.R.randint(0, 3))
        low = list(shape)
        low[axis] = max(1, round(shape[axis] / self.R.uniform(*self.factor)))
        coarse = F.interpolate(volume[None, None].float(), size=low, mode="area")
        return F.interpolate(coarse, size=shape, mode="trilinear", align_corners=False)[0, 0].to(volume.dtype)
