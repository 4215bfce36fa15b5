"""File utilities every stage shares: SHA-256 checksums and atomic writes (a temporary sibling, then rename)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHUNK = 1 << 20


def sha256_chunks(chunks: Iterable[bytes]) -> str:
    """SHA-256 (hex) of the concatenation of `chunks`."""
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def sha256_file(path: Path | str) -> str:
    """SHA-256 of a file, read in 1 MiB chunks."""
    with open(path, "rb") as f:
        return sha256_chunks(iter(lambda: f.read(CHUNK), b""))


def partial_name(path: Path) -> Path:
    """A hidden sibling of `path`, unique per process and thread, keeping its suffixes.

    Writers such as nibabel, numpy and matplotlib choose the format from the suffix, so
    'case_seg.nii.gz' becomes '.case_seg.<pid>-<thread>.partial.nii.gz'."""
    suffixes = "".join(path.suffixes)
    stem = path.name[: len(path.name) - len(suffixes)] if suffixes else path.name
    return path.with_name(f".{stem}.{os.getpid()}-{threading.get_ident()}.partial{suffixes}")


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path to write; it replaces `path` only when the block finishes without error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path | str, text: str) -> Path:
    """Write UTF-8 text so that readers see the old file or the whole new one, never a part."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json_atomic(path: Path | str, payload: Any, indent: int | None = 1) -> Path:
    """Write JSON atomically (UTF-8, a trailing newline)."""
    return write_text_atomic(path, json.dumps(payload, indent=indent) + "\n")


@contextmanager
def atomic_dir(path: Path | str, mode: int = 0o755) -> Iterator[Path]:
    """Yield a hidden sibling folder to fill; it replaces the folder `path` only if the block raises nothing."""
    path = Path(path)
    built = partial_dir(path, mode)
    try:
        yield built
        swap_dir(built, path)
    finally:
        shutil.rmtree(built, ignore_errors=True)


def partial_dir(path: Path, mode: int = 0o755) -> Path:
    """A new hidden sibling folder of `path` to build it in (`swap_dir` moves it into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    built = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
    os.chmod(built, mode)  # mkdtemp makes 0700; a finished folder is meant to be shared
    return built


def swap_dir(built: Path, path: Path) -> None:
    """Rename `built` to `path`, replacing a folder there (put back if the rename fails)."""
    drop_set_aside(move_into_place(built, path))


def move_into_place(built: Path, path: Path) -> Path | None:
    """Rename `built` to `path`. A folder already at `path` is first renamed to a hidden sibling, which
    is returned (None when there was none) for `drop_set_aside` or `undo_move`."""
    if not path.exists():
        os.rename(built, path)
        return None
    old = path.with_name(f".{path.name}.old-{uuid.uuid4().hex[:8]}")
    os.rename(path, old)
    try:
        os.rename(built, path)
    except OSError:
        os.rename(old, path)
        raise
    return old


def undo_move(path: Path, set_aside: Path | None) -> None:
    """Undo `move_into_place`: remove the folder at `path` and put the set-aside one back."""
    shutil.rmtree(path, ignore_errors=True)
    if set_aside is not None:
        os.rename(set_aside, path)


def drop_set_aside(set_aside: Path | None) -> None:
    """Delete the folder `move_into_place` set aside, once the new one is final."""
    if set_aside is not None:
        shutil.rmtree(set_aside, ignore_errors=True)
