"""Derived arrays built once and kept on disk (atlases): a compressed npz per key, written atomically."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from neurotriage.config import load_settings
from neurotriage.files import atomic_path


def cached_arrays(name: str, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Load `name`.npz from the cache folder, or build, store (temp file + rename) and return it."""
    path = cache_path(name)
    if path.exists():
        with np.load(path) as npz:
            return {k: npz[k] for k in npz.files}
    arrays = build()
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, **arrays)
    return arrays


def cache_path(name: str) -> Path:
    """Where `cached_arrays(name, ...)` keeps its file."""
    return load_settings().cache_dir / f"{name}.npz"
