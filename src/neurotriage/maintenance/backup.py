"""`backup`: the clinical database and every file under NEUROTRIAGE_HOME in one tar, while the server runs.

The database is copied first, as one snapshot (`maintenance.snapshot`); the files are read after it.
Every file a database row names is written, and flushed, before that row commits: a job's upload
and options, an ingested case, a received DICOM study. So the files read after the snapshot include
those of every row in it, and files newer than the snapshot are extras that no row of it names.

Report folders are the exception: a report is drafted in a hidden folder beside its place, the
finding commits, and only then is the draft moved into place (`diagnosis.record`). So report folders
are matched to the snapshot's findings: a folder that does not hold the report of the last finding
the snapshot stores for it yet is archived from that finding's draft beside it (read from the folder
itself if the draft moves into place meanwhile), and a report folder of a finding committed after
the snapshot is left out. The restored installation then holds each finding with its report.

Never archived: the live SQLite files (the snapshot stands for them), lock files, and anything under
a staging name (unfinished work, or a leftover of a killed run). A file removed while the backup
runs is left out and counted. The archive is written to a hidden file and renamed into place whole,
readable by its owner only: it holds identifiable health data.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tarfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import BinaryIO

from pydantic import BaseModel
from tqdm import tqdm

from neurotriage import __version__
from neurotriage.clinical import db
from neurotriage.config import load_settings
from neurotriage.errors import UserError
from neurotriage.files import CHUNK, atomic_path, partial_dir, staged_entry
from neurotriage.maintenance.archive import (
    DATABASE,
    HOME,
    MANIFEST,
    ArchivedFile,
    Manifest,
    database_files,
    home_files,
    member_name,
)
from neurotriage.maintenance.snapshot import Snapshot, sqlite_path, stored_keys, take_snapshot
from neurotriage.maintenance.sweep import REPORT_JSON, report_key

ARCHIVE_MODE = 0o600
# Failures that are the machine's state, not a bug: one line, exit 2 (as `diagnosis.record` treats a
# report folder; importing it would load the segmentation stack).
UNWRITABLE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS})


class BackupResult(BaseModel):
    """What one backup wrote."""

    archive: str
    files: int  # files of NEUROTRIAGE_HOME
    bytes: int  # the database and the files
    database: str
    revision: str
    seconds: float
    vanished: int  # files removed while the backup ran, left out
    outside_home: int  # report folders of findings outside NEUROTRIAGE_HOME: not in the archive


@dataclass(frozen=True)
class _Member:
    """A file to archive: its member name, where to read it, and where else if that moved away."""

    name: str
    path: Path
    moved_to: Path | None = None


def backup(out: Path | str, url: str | None = None, progress: bool = False) -> BackupResult:
    """Write a consistent snapshot of the database of `url` (default: the configured one) and of every
    file under NEUROTRIAGE_HOME to the tar `out`; `progress` shows a bar on stderr."""
    started = time.perf_counter()
    url, out = db.database_url(url), Path(out).resolve()
    if out.is_dir():
        raise UserError(f"{out}: is a folder; name the archive file to write")
    if not out.parent.is_dir():
        raise UserError(f"{out.parent}: no such folder; create it first, or write the archive elsewhere")
    home = load_settings().home.resolve()
    try:
        with _scratch(out) as folder:
            snapshot = take_snapshot(url, folder)
            members, outside = _plan(home, snapshot, url, out)
            manifest, vanished = _write(out, snapshot, members, home, progress)
    except OSError as exc:
        if exc.errno not in UNWRITABLE:
            raise
        raise UserError(f"{exc.filename or out}: cannot back it up: {exc.strerror}") from None
    return BackupResult(
        archive=str(out),
        files=len(manifest.files) - 1,
        bytes=manifest.total_bytes,
        database=snapshot.kind,
        revision=snapshot.revision,
        seconds=round(time.perf_counter() - started, 2),
        vanished=vanished,
        outside_home=outside,
    )


@contextmanager
def _scratch(out: Path) -> Iterator[Path]:
    """A hidden folder beside `out` for the database snapshot, removed at the end."""
    folder = partial_dir(out.with_name(f"{out.name}.snapshot"), mode=0o700)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _plan(home: Path, snapshot: Snapshot, url: str, out: Path) -> tuple[list[_Member], int]:
    """The files to archive, report folders matched to the snapshot; and how many of the snapshot's report
    folders lie outside `home`."""
    leave_out = {out, *(database_files(sqlite_path(url).resolve()) if snapshot.kind == "sqlite" else ())}
    files = list(home_files(home, leave_out)) if home.is_dir() else []
    wanted = {folder: key for folder, key in snapshot.reports.items() if folder.is_relative_to(home)}
    drafts = {folder: _draft_of(folder, key) for folder, key in wanted.items() if report_key(folder) != key}
    drafts = {folder: draft for folder, draft in drafts.items() if draft is not None}
    reports = {path.parent for path in files if path.name == REPORT_JSON}
    skipped = _newer_reports(reports - wanted.keys(), snapshot, url) | drafts.keys()
    members = [_Member(_name(home, path), path) for path in files if not _under_any(path, skipped)]
    for folder, draft in sorted(drafts.items()):
        members += _draft_members(home, folder, draft)
    return members, len(snapshot.reports) - len(wanted)


def _name(home: Path, path: Path) -> str:
    return member_name(HOME, str(path.relative_to(home)))


def _under_any(path: Path, folders: set[Path]) -> bool:
    return any(path.is_relative_to(folder) for folder in folders)


def _newer_reports(folders: set[Path], snapshot: Snapshot, url: str) -> set[Path]:
    """The report folders among `folders` whose finding was committed after the snapshot."""
    keys = {folder: report_key(folder) for folder in folders}
    unknown = {key for key in keys.values() if key is not None and key not in snapshot.keys}
    committed = stored_keys(url, unknown)
    return {folder for folder, key in keys.items() if key in committed}


def _draft_of(folder: Path, key: str) -> Path | None:
    """The hidden draft beside `folder` that holds the report of finding `key`."""
    for path in sorted(folder.parent.glob(f".{folder.name}.*.partial")):
        staged = staged_entry(path)
        if staged is not None and staged.target == folder and report_key(path) == key:
            return path
    return None


def _draft_members(home: Path, folder: Path, draft: Path) -> list[_Member]:
    """The files of `draft`, archived under `folder`'s name; each is read from `folder` if the draft has
    moved into place by then."""
    files = list(home_files(draft, set()))
    if not draft.exists():  # moved into place while it was listed: the listing may lack files
        return [_Member(_name(home, path), path) for path in home_files(folder, set())]
    return [
        _Member(_name(home, folder / path.relative_to(draft)), path, folder / path.relative_to(draft)) for path in files
    ]


def _write(out: Path, snapshot: Snapshot, members: list[_Member], home: Path, progress: bool) -> tuple[Manifest, int]:
    """Write the tar, the database first and the manifest last, into a hidden file renamed to `out`."""
    total = snapshot.file.stat().st_size + sum(_size(m.path) for m in members)
    database = _Member(member_name(DATABASE, snapshot.file.name), snapshot.file)
    archived: list[ArchivedFile] = []
    with (
        atomic_path(out) as tmp,
        os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, ARCHIVE_MODE), "wb") as raw,
        tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT, copybufsize=CHUNK) as tar,
        tqdm(total=total, unit="B", unit_scale=True, desc="backup", leave=False, disable=not progress) as bar,
    ):
        for member in (database, *members):
            entry = _add(tar, member, bar.update)
            if entry is not None:
                archived.append(entry)
        manifest = _manifest(snapshot, home, archived)
        _add_bytes(tar, MANIFEST, manifest.model_dump_json(indent=1).encode())
    return manifest, len(members) + 1 - len(archived)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _add(tar: tarfile.TarFile, member: _Member, advance: Callable[[int], object]) -> ArchivedFile | None:
    """Archive one file, hashing what is archived; None when it is gone (from both of its places)."""
    try:
        source = open(member.path, "rb")  # noqa: SIM115 (closed below)
    except FileNotFoundError:
        if member.moved_to is None:
            return None
        return _add(tar, _Member(member.name, member.moved_to), advance)
    with source:
        stat = os.fstat(source.fileno())
        info = tarfile.TarInfo(member.name)
        info.size, info.mtime, info.mode = stat.st_size, int(stat.st_mtime), stat.st_mode & 0o777
        reader = _HashingReader(source, member.path, advance)
        tar.addfile(info, reader)
    return ArchivedFile(path=member.name, sha256=reader.hexdigest(), size=stat.st_size)


class _HashingReader:
    """Reads a file for the tar while hashing what passes and reporting its size to `advance`."""

    def __init__(self, source: BinaryIO, path: Path, advance: Callable[[int], object]) -> None:
        self.source, self.path, self.advance = source, path, advance
        self.digest = hashlib.sha256()

    def read(self, size: int) -> bytes:
        """The next `size` bytes; the tar header already holds the size, so a shorter read is an error."""
        data = self.source.read(size)
        if len(data) < size:
            raise UserError(f"{self.path}: it shrank while it was archived; run the backup again")
        self.digest.update(data)
        self.advance(len(data))
        return data

    def hexdigest(self) -> str:
        """The SHA-256 of everything read."""
        return self.digest.hexdigest()


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(time.time()), ARCHIVE_MODE
    tar.addfile(info, BytesIO(data))


def _manifest(snapshot: Snapshot, home: Path, archived: list[ArchivedFile]) -> Manifest:
    return Manifest(
        created_at=datetime.now(UTC),
        neurotriage_version=__version__,
        database=snapshot.kind,
        database_file=archived[0].path,
        schema_name=snapshot.schema_name,
        revision=snapshot.revision,
        home=str(home),
        files=archived,
    )
