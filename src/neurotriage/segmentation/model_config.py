"""What a checkpoint records beside its weights, so inference needs nothing else (nnU-Net's discipline).

The network (architecture and its exact keyword arguments), its inputs (sequence order, the
preprocessing recipe, the grid it was trained on), its outputs (label mode and scheme), how it
runs (training ROI, size divisor) and the clean-up it was tuned with (post-processing and flip
averaging), as saved with the checkpoint's weights.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from neurotriage.imaging.labels import LABEL_NAMES, TUMOUR_REGIONS
from neurotriage.imaging.naming import SEQUENCES
from neurotriage.segmentation.losses import LABEL_MODES, LossConfig, out_channels
from neurotriage.segmentation.networks import ARCHS
from neurotriage.segmentation.postprocess import DEFAULT_POST, DEFAULT_TTA, PostProcess
from neurotriage.segmentation.preprocess import Recipe

LABELS_WRITTEN = "written back in the input's naming: enhancing 4 for BraTS 2020, 3 for BraTS 2023"


class LabelScheme(BaseModel):
    """The internal labels and the evaluated regions they make up."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    internal: dict[str, str]
    regions: dict[str, list[int]]
    files: str


def label_scheme() -> LabelScheme:
    """The project's internal label scheme and regions."""
    return LabelScheme(
        internal={str(k): v for k, v in LABEL_NAMES.items()},
        regions={k: list(v) for k, v in TUMOUR_REGIONS.items()},
        files=LABELS_WRITTEN,
    )


class Grid(BaseModel):
    """The image grid a model was trained on: shape, spacing (mm) and orientation codes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    shape: list[int]
    spacing: list[float]
    axcodes: list[str]


class ModelConfig(BaseModel):
    """A segmentation model's self-contained config, saved in its checkpoint as plain data."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    arch: str
    arch_kwargs: dict[str, Any]
    channels: list[str]
    label_mode: str
    label_scheme: LabelScheme
    recipe: Recipe
    grid: Grid
    roi: list[int]
    divisor: int
    loss: LossConfig | None = None
    neurotriage_version: str | None = None
    model_id: str | None = None
    # Checkpoints saved without them were tuned with the library's defaults.
    postprocess: PostProcess = DEFAULT_POST
    tta: bool = DEFAULT_TTA

    @field_validator("arch")
    @classmethod
    def _known_arch(cls, arch: str) -> str:
        if arch not in ARCHS:
            raise ValueError(f"unknown architecture '{arch}' (known: {', '.join(ARCHS)})")
        return arch

    @field_validator("channels")
    @classmethod
    def _distinct_sequences(cls, channels: list[str]) -> list[str]:
        if any(c not in SEQUENCES for c in channels) or len(set(channels)) != len(channels):
            raise ValueError(f"input channels {channels} are not distinct BraTS sequences ({', '.join(SEQUENCES)})")
        return channels

    @field_validator("label_mode")
    @classmethod
    def _known_label_mode(cls, mode: str) -> str:
        if mode not in LABEL_MODES:
            raise ValueError(f"unknown label mode '{mode}' (known: {', '.join(LABEL_MODES)})")
        return mode

    @property
    def io(self) -> tuple[int, int]:
        """(input channels, output channels) the network must have."""
        return len(self.channels), out_channels(self.label_mode)

    def to_payload(self) -> dict[str, Any]:
        """Plain data (dicts, lists, numbers, strings) that loads back with `torch.load(weights_only=True)`."""
        return _plain(self.model_dump())


def _plain(value: Any) -> Any:
    """Tuples become lists, recursively, as JSON would have them."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
