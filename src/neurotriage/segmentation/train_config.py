"""The settings of a training run and the choices they take; importable without torch, so the CLI
builds its options from them."""

from __future__ import annotations

from dataclasses import dataclass

from neurotriage.segmentation.networks import DEFAULT_ARCH

PRECISIONS = ("auto", "fp32", "bf16")  # inference takes the same choices
LABEL_MODES = ("labels", "regions")  # softmax over the 4 labels, or sigmoid WT/TC/ET
AUGMENTS = ("basic", "shading", "strong")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on; saved in every checkpoint and in history.json."""

    data_dir: str
    out: str
    arch: str = DEFAULT_ARCH
    width: int | None = None
    epochs: int = 100
    batch_size: int = 2
    lr: float = 1e-4
    roi: int = 128
    val_fraction: float = 0.2
    seed: int = 0
    label_mode: str = "labels"
    class_weights: tuple[float, ...] | None = None
    workers: int = 2
    precision: str = "auto"
    augment: str = "basic"  # "strong" adds scanner/anatomy variation (see data.strong_augmentation)
    cache: bool = False  # keep decoded cases in memory
    init: str | None = None  # start from these weights (fine-tuning) instead of random ones
