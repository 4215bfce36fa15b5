"""What a backup archive holds and how its files are read: the manifest, member names, the home's files.

An archive is a plain tar: `database/<file>` (the SQLite copy or the pg_dump archive), `home/<path>`
for each file under NEUROTRIAGE_HOME, and `manifest.json` last, which lists every other member with
its SHA-256 and size.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import BaseModel

from neurotriage.files import STAGED_GLOBS
from neurotriage.maintenance.sweep import LOCK_NAME

MANIFEST = "manifest.json"
FORMAT = 1
HOME = "home"
DATABASE = "database"
# Empty files that only carry locks: the sweep's, and each DICOM outbox item's (pacs.send.LOCK_NAME,
# not imported: that module loads pydicom).
LOCK_NAMES = frozenset({LOCK_NAME, ".lock"})
SQLITE_COMPANIONS = ("", "-wal", "-shm", "-journal")


class ArchivedFile(BaseModel):
    """One member of the archive: its name, SHA-256 and size in bytes."""

    path: str
    sha256: str
    size: int


class Manifest(BaseModel):
    """The archive's table of contents, with what a restore must check before it writes anything."""

    format: int = FORMAT
    created_at: datetime
    neurotriage_version: str
    database: Literal["sqlite", "postgresql"]
    database_file: str  # the member that holds the database
    schema_name: str | None = None  # the PostgreSQL schema the dump holds
    revision: str  # the database's schema revision (Alembic)
    home: str  # NEUROTRIAGE_HOME the files came from: the database names files by this path
    files: list[ArchivedFile]

    @property
    def total_bytes(self) -> int:
        """The size of every member but the manifest."""
        return sum(f.size for f in self.files)


def database_files(path: Path) -> set[Path]:
    """A SQLite database file and the files SQLite keeps beside it."""
    return {path.with_name(path.name + suffix) for suffix in SQLITE_COMPANIONS}


def home_files(home: Path, leave_out: set[Path]) -> Iterator[Path]:
    """Every regular file under `home`, in a stable order, except lock files, the files in `leave_out`
    and anything under a staging name of `neurotriage.files` (unfinished, or a leftover of a killed run)."""
    for root, dirs, names in os.walk(home):
        dirs[:] = sorted(d for d in dirs if not _staged(d))
        for name in sorted(names):
            path = Path(root, name)
            if name not in LOCK_NAMES and not _staged(name) and path not in leave_out and path.is_file():
                yield path


def _staged(name: str) -> bool:
    return any(fnmatch(name, pattern) for pattern in STAGED_GLOBS)


def member_name(*parts: str) -> str:
    """A member name from path parts ('home', 'reports/...'), always with forward slashes."""
    return PurePosixPath(*parts).as_posix()


def safe_member(name: str) -> PurePosixPath | None:
    """`name` as a relative path under 'home/' or 'database/', None when it points anywhere else."""
    path = PurePosixPath(name)
    if path.is_absolute() or len(path.parts) < 2 or path.parts[0] not in (HOME, DATABASE):
        return None
    if any(part in ("", ".", "..") for part in path.parts) or "\\" in name:
        return None
    return path
