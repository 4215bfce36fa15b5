"""Augmentations MONAI lacks: what differs between the sequences of one real BraTS case.

One sequence may be acquired with thick slices, and each has its own intensity shading.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.transforms import MapTransform, RandBiasField, RandomizableTransform


class _RandPerChannel(RandomizableTransform, MapTransform):
    """With probability `prob`, change each channel of the image with probability `channel_prob`."""

    def __init__(self, keys, prob: float, channel_prob: float):
        MapTransform.__init__(self, keys)
        RandomizableTransform.__init__(self, prob)
        self.channel_prob = channel_prob

    def __call__(self, data: dict) -> dict:
        """Change a random subset of the image's channels, each on its own."""
        self.randomize(None)
        if not self._do_transform:
            return data
        out = dict(data)
        for key in self.key_iterator(out):
            image = torch.as_tensor(out[key]).clone()
            for c in range(image.shape[0]):
                if self.R.random() < self.channel_prob:
                    image[c] = self._change(image[c])
            out[key] = image
        return out

    def _change(self, volume: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class RandThickSlicesd(_RandPerChannel):
    """Per channel, average `factor` slices along one random axis and interpolate back.

    BraTS resamples every sequence to 1 mm, but a sequence acquired with 4-6 mm slices stays blurred
    along one axis only, often in just one of the four sequences. MONAI's RandSimulateLowResolution
    treats all channels and axes alike, so it cannot teach this.
    """

    def __init__(
        self,
        keys,
        prob: float = 0.3,
        channel_prob: float = 0.4,
        factor: tuple[float, float] = (2, 6),
        axial_prob: float = 1 / 3,
    ):
        """`factor`: range of slice thickness in voxels; `channel_prob`: chance each channel is thickened;
        `axial_prob`: chance the thick axis is the last (axial) one, else one of the other two."""
        super().__init__(keys, prob, channel_prob)
        self.factor = factor
        self.axial_prob = axial_prob

    def _change(self, volume: torch.Tensor) -> torch.Tensor:
        shape = tuple(volume.shape)
        axis = 2 if self.R.random() < self.axial_prob else int(self.R.randint(0, 2))
        low = list(shape)
        low[axis] = max(1, round(shape[axis] / self.R.uniform(*self.factor)))
        coarse = F.interpolate(volume[None, None].float(), size=low, mode="area")
        return F.interpolate(coarse, size=shape, mode="trilinear", align_corners=False)[0, 0].to(volume.dtype)


class RandChannelBiasFieldd(_RandPerChannel):
    """Per channel, an independent smooth multiplicative shading of the raw intensities.

    Each sequence is a separate acquisition, and BraTS does not correct their shading, so one sequence
    can be bright along the brain's edge where the others are not. MONAI's RandBiasField draws one
    field for all channels, and multiplies values that are z-scores here, so it cannot teach that a
    FLAIR-only brightening is not oedema.
    """

    def __init__(
        self,
        keys,
        prob: float = 0.3,
        channel_prob: float = 0.5,
        coeff_range: tuple[float, float] = (0.0, 0.12),
        mean_over_std: tuple[float, float] = (2.0, 5.0),
    ):
        """`channel_prob`: chance each channel is shaded; `coeff_range`: MONAI's polynomial coefficients;
        `mean_over_std`: range of a brain's raw mean / standard deviation, to undo the z-scoring."""
        super().__init__(keys, prob, channel_prob)
        self.mean_over_std = mean_over_std
        self.field = RandBiasField(coeff_range=coeff_range, prob=1.0)

    def set_random_state(self, seed: int | None = None, state=None) -> RandChannelBiasFieldd:
        """Seed this transform and the field it draws (Compose seeds only its direct members)."""
        super().set_random_state(seed, state)
        self.field.set_random_state(state=self.R)
        return self

    def _change(self, z: torch.Tensor) -> torch.Tensor:
        # z = (I - mean) / std, so I * field becomes (z + k) * field - k with k = mean / std.
        k = float(self.R.uniform(*self.mean_over_std))
        shaded = torch.as_tensor(self.field((z + k)[None].float()))[0] - k
        return torch.where(z != 0, shaded.to(z.dtype), z)  # the zero background stays zero
