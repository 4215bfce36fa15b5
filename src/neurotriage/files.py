"""File utilities every stage shares: SHA-256 checksums and atomic, durable writes (a temporary sibling,
fsync, rename, fsync of the folder).

Every temporary sibling is hidden and carries its owner (host, pid and the process's start time), so
`staged_entry` and `owner_alive` can tell a leftover of a killed process from the work of a live one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from neurotriage.faults import fault_point

CHUNK = 1 << 20
# Hidden temporaries: '.<target stem>.<owner>_<unique>.partial<target suffixes>' (files and folders
# being built) and '.<target>.old-<owner>_<unique>' (a folder set aside while its successor moves in),
# where <owner> is '<host>_<pid>_<start>' (see `owner_tag`).
OWNER = r"(?P<host>[A-Za-z0-9-]+)_(?P<pid>\d+)_(?P<start>\d+)"
PARTIAL_RE = re.compile(rf"^\.(?P<stem>.+)\.{OWNER}_[a-z0-9_]+\.partial(?P<suffixes>(?:\.[^.]+)*)$")
OLD_RE = re.compile(rf"^\.(?P<stem>.+)\.old-{OWNER}_[0-9a-f]+$")
STAGED_GLOBS = (".*.partial*", ".*.old-*")  # what any such name matches, owner or not
PROC = Path("/proc")


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


def _host() -> str:
    """This machine's name as staging names carry it: letters, digits and '-' only."""
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:63] or "host"


def _start_time(pid: int) -> int | None:
    """When process `pid` started (clock ticks since boot), None when there is no such process.

    With the pid it names one process for good: a pid reused after a crash (a container's pid 1
    after a restart) starts at another time. Without /proc a live process gets 0."""
    if not PROC.is_dir():
        return 0 if _pid_exists(pid) else None
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[19])  # field 22; the command name may hold spaces


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


@cache
def _owner_of(pid: int) -> str:
    return f"{_host()}_{pid}_{_start_time(pid) or 0}"


def owner_tag() -> str:
    """This process as the staging names it makes carry it: '<host>_<pid>_<start time>'."""
    return _owner_of(os.getpid())  # keyed by pid: a forked child is another owner


@dataclass(frozen=True)
class Staged:
    """A hidden temporary made by this module: where it is, what it stands in for, who made it."""

    path: Path
    target: Path
    kind: str  # "partial" (being built) or "old" (an earlier folder set aside)
    host: str
    pid: int
    start: int


def staged_entry(path: Path) -> Staged | None:
    """The temporary that `path` names, None when its name is not one this module makes."""
    match = PARTIAL_RE.match(path.name)
    kind = "partial"
    if match is None:
        match, kind = OLD_RE.match(path.name), "old"
    if match is None:
        return None
    target = match["stem"] + (match.groupdict().get("suffixes") or "")
    return Staged(path, path.with_name(target), kind, match["host"], int(match["pid"]), int(match["start"]))


def owner_alive(staged: Staged) -> bool:
    """Whether the process that made `staged` may still be using it (always True for another host)."""
    if staged.host != _host():
        return True
    return _start_time(staged.pid) in (staged.start, 0)


def fsync_path(path: Path | str) -> None:
    """Flush a file's or a folder's data and metadata to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_tree(folder: Path | str) -> None:
    """fsync every file under `folder`, then every folder, deepest first."""
    for root, _dirs, names in os.walk(folder, topdown=False):
        for name in names:
            fsync_path(os.path.join(root, name))
        fsync_path(root)


def partial_name(path: Path) -> Path:
    """A hidden sibling of `path`, unique per process and thread, keeping its suffixes.

    Writers such as nibabel, numpy and matplotlib choose the format from the suffix, so
    'case_seg.nii.gz' becomes '.case_seg.<owner>_<thread>.partial.nii.gz'."""
    suffixes = "".join(path.suffixes)
    stem = path.name[: len(path.name) - len(suffixes)] if suffixes else path.name
    return path.with_name(f".{stem}.{owner_tag()}_{threading.get_ident()}.partial{suffixes}")


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path to write; it replaces `path` only when the block finishes without error,
    flushed to the disk before and after the rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_name(path)
    try:
        yield tmp
        fsync_path(tmp)
        os.replace(tmp, path)
        fsync_path(path.parent)
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
    built = Path(tempfile.mkdtemp(prefix=f".{path.name}.{owner_tag()}_", suffix=".partial", dir=path.parent))
    os.chmod(built, mode)  # mkdtemp makes 0700; a finished folder is meant to be shared
    return built


def swap_dir(built: Path, path: Path) -> None:
    """Flush `built` to the disk and rename it to `path`, replacing a folder there (put back if the rename fails)."""
    sync_tree(built)
    drop_set_aside(move_into_place(built, path))


def move_into_place(built: Path, path: Path) -> Path | None:
    """Rename `built` (already flushed: `sync_tree`) to `path`, then flush the parent folder. A folder
    already at `path` is first renamed to a hidden sibling, which is returned (None when there was
    none) for `drop_set_aside`."""
    old = None
    if path.exists():
        old = path.with_name(f".{path.name}.old-{owner_tag()}_{uuid.uuid4().hex[:8]}")
        os.rename(path, old)
        fault_point("mid-move")
    try:
        os.rename(built, path)
    except OSError:
        if old is not None:
            os.rename(old, path)
        raise
    fsync_path(path.parent)
    return old


def drop_set_aside(set_aside: Path | None) -> None:
    """Delete the folder `move_into_place` set aside, once the new one is final."""
    if set_aside is not None:
        shutil.rmtree(set_aside, ignore_errors=True)
