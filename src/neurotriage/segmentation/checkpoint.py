"""Self-contained checkpoints: weights plus everything inference needs (nnU-Net's discipline).

A checkpoint is a `torch.save` dict of plain data and tensors, so it loads with
`weights_only=True` (no code runs on load). Its `config` is a `ModelConfig` saved as plain data;
reading validates it back into one.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Iterable
from pathlib import Path

import torch
from pydantic import ValidationError

from neurotriage.errors import UserError
from neurotriage.files import atomic_path
from neurotriage.segmentation.model_config import ModelConfig

RUN_BEST = "best.pt"  # the checkpoint a training run folder stands for


def checkpoint_file(path: Path | str) -> Path:
    """The checkpoint file a path names: the file itself, or a training run folder's best.pt."""
    path = Path(path)
    return path / RUN_BEST if path.is_dir() else path


FORMAT = "neurotriage-segmentation-checkpoint"
VERSION = 1


def save_checkpoint(path: Path, config: ModelConfig, state_dict: dict, **extra) -> Path:
    """Write a checkpoint atomically (temp file + rename)."""
    payload = {"format": FORMAT, "version": VERSION, "config": config.to_payload(), "state_dict": state_dict, **extra}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def read_checkpoint(path: Path) -> dict:
    """Load and validate a checkpoint: its payload, with the config as a `ModelConfig`.

    Every fault is a one-line UserError naming the file."""
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
    missing = next((key for key in ("config", "state_dict") if not isinstance(payload.get(key), dict)), None)
    if missing:
        raise UserError(f"{path}: checkpoint is incomplete (missing {missing})", field=missing)
    return payload | {"config": validated_config(path, payload["config"])}


def validated_config(path: Path, config: dict) -> ModelConfig:
    """A model file's config validated; the first fault is a UserError naming its field."""
    try:
        return ModelConfig.model_validate(config)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = "config." + ".".join(str(part) for part in error["loc"])
        reason = "missing" if error["type"] == "missing" else error["msg"].removeprefix("Value error, ")
        raise UserError(f"{path}: checkpoint {field}: {reason}", field=field) from None


def check_input_channels(path: Path, tensors: Iterable[torch.Tensor], config: ModelConfig) -> None:
    """Refuse weights whose first 3D convolution does not take one input channel per listed sequence."""
    first = next((t for t in tensors if torch.is_tensor(t) and t.ndim == 5), None)
    if first is None:
        raise UserError(f"{path}: the network holds no 3D convolution weights", field="model")
    if first.shape[1] != len(config.channels):
        raise UserError(
            f"{path}: wrong channel count: the network takes {first.shape[1]} input channels "
            f"but its config lists {len(config.channels)} sequences ({', '.join(config.channels)})",
            field="model",
        )
