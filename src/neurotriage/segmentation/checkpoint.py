"""Self-contained checkpoints: weights plus everything inference needs (nnU-Net's discipline).

A checkpoint is a `torch.save` dict of plain data and tensors, so it loads with
`weights_only=True` (no code runs on load). Its `config` holds the architecture and its exact
keyword arguments, the sequence order, the label scheme and mode, the preprocessing recipe, the
grid the model was trained on, the training ROI and the size divisor.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

from neurotriage.errors import UserError
from neurotriage.files import atomic_path
from neurotriage.imaging.labels import LABEL_NAMES, TUMOUR_REGIONS
from neurotriage.imaging.naming import SEQUENCES
from neurotriage.segmentation.losses import LABEL_MODES, out_channels
from neurotriage.segmentation.models import ARCHS

RUN_BEST = "best.pt"  # the checkpoint a training run folder stands for


def checkpoint_file(path: Path | str) -> Path:
    """The checkpoint file a path names: the file itself, or a training run folder's best.pt."""
    path = Path(path)
    return path / RUN_BEST if path.is_dir() else path


FORMAT = "neurotriage-segmentation-checkpoint"
VERSION = 1
CONFIG_KEYS = (
    "arch", "arch_kwargs", "channels", "label_mode", "label_scheme", "recipe", "grid", "roi", "divisor",
)  # fmt: skip


def label_scheme() -> dict:
    """The internal label scheme and the regions, as stored in checkpoints."""
    return {
        "internal": {str(k): v for k, v in LABEL_NAMES.items()},
        "regions": {k: list(v) for k, v in TUMOUR_REGIONS.items()},
        "files": "written back in the input's naming: enhancing 4 for BraTS 2020, 3 for BraTS 2023",
    }


def save_checkpoint(path: Path, config: dict, state_dict: dict, **extra) -> Path:
    """Write a checkpoint atomically (temp file + rename)."""
    payload = {"format": FORMAT, "version": VERSION, "config": config, "state_dict": state_dict, **extra}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def read_checkpoint(path: Path) -> dict:
    """Load and validate a checkpoint; every fault is a one-line UserError naming the file."""
    if not path.is_file():
        raise UserError(f"{path}: model checkpoint not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError):
        raise UserError(f"{path}: not a readable checkpoint (corrupt, truncated or not a torch file)") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UserError(f"{path}: not a neurotriage segmentation checkpoint")
    if payload.get("version") != VERSION:
        raise UserError(f"{path}: checkpoint version {payload.get('version')} is not supported (expected {VERSION})")
    config = payload.get("config")
    missing = [k for k in CONFIG_KEYS if not isinstance(config, dict) or k not in config]
    if missing or not isinstance(payload.get("state_dict"), dict):
        raise UserError(f"{path}: checkpoint is incomplete (missing {', '.join(missing) or 'state_dict'})")
    _check_config(path, config)
    return payload


def _check_config(path: Path, config: dict) -> None:
    if config["arch"] not in ARCHS:
        raise UserError(f"{path}: unknown architecture '{config['arch']}' (known: {', '.join(ARCHS)})")
    unknown = [c for c in config["channels"] if c not in SEQUENCES]
    if unknown or len(set(config["channels"])) != len(config["channels"]):
        raise UserError(
            f"{path}: checkpoint input channels {config['channels']} are not distinct BraTS sequences "
            f"({', '.join(SEQUENCES)})"
        )
    if config["label_mode"] not in LABEL_MODES:
        raise UserError(f"{path}: unknown label mode '{config['label_mode']}'")


def expected_io(config: dict) -> tuple[int, int]:
    """(input channels, output channels) the checkpoint's network must have."""
    return len(config["channels"]), out_channels(config["label_mode"])
