"""Receive a BraTS case as a zip: size and type checks, zip-slip-safe extraction, atomic move.

Every entry is checked before anything is written, so a hostile zip writes nothing. The case is
extracted into a private temporary folder and only renamed into the job's folder once it has been
recognised as a complete BraTS case.
"""

from __future__ import annotations

import shutil
import stat
import zipfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from neurotriage.errors import UserError
from neurotriage.files import partial_dir
from neurotriage.imaging.io import CaseFiles, find_case

MAX_ENTRIES = 100  # a case is 4-5 files; room for a README or folders, not for a bomb of tiny files
INFLATION = 8  # extracted bytes allowed per uploaded byte (.nii inside a zip compresses ~4x)
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


def check_size(name: str, size: int, limit: int) -> None:
    """Refuse an upload over the configured limit."""
    if size > limit:
        raise UserError(f"{name}: upload is {size:,} bytes, over the limit of {limit:,} bytes")


def _safe_member(info: zipfile.ZipInfo) -> PurePosixPath | None:
    """The entry's relative path, None for a folder; UserError for anything that could escape."""
    name = info.filename
    path = PurePosixPath(name)
    if "\\" in name or path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise UserError(f"zip entry {name!r}: path leaves the upload folder; refused")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise UserError(f"zip entry {name!r}: symbolic links are not accepted")
    if info.flag_bits & 0x1:
        raise UserError(f"zip entry {name!r}: encrypted entries are not accepted")
    return None if info.is_dir() else path


def check_zip(name: str, stream: BinaryIO, size: int, limit: int) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """Validate an uploaded zip without writing anything; returns the file entries to extract."""
    if not name.lower().endswith(".zip"):
        raise UserError(f"{name}: expected a .zip of one BraTS case folder")
    check_size(name, size, limit)
    stream.seek(0)
    if stream.read(4) not in ZIP_MAGIC:
        raise UserError(f"{name}: not a zip file")
    stream.seek(0)
    try:
        with zipfile.ZipFile(stream) as archive:
            infos = archive.infolist()
    except zipfile.BadZipFile as exc:
        raise UserError(f"{name}: damaged zip ({exc})") from None
    if len(infos) > MAX_ENTRIES:
        raise UserError(f"{name}: {len(infos)} entries, more than {MAX_ENTRIES}; upload one case folder")
    if sum(i.file_size for i in infos) > INFLATION * max(size, 1):
        raise UserError(f"{name}: expands to far more than its size; refused as a possible zip bomb")
    entries = [(info, path) for info in infos if (path := _safe_member(info)) is not None]
    if not entries:
        raise UserError(f"{name}: the zip is empty")
    return entries


def as_uploaded(message: str, folder: Path, name: str) -> str:
    """The message with the server `folder` holding an upload shown as the upload's own `name`."""
    return message.replace(str(folder), name)


def job_error(message: str, work: Path, upload_name: str) -> str:
    """A job's error as its user may see it: no server path, the case named as it was uploaded."""
    # A job's folder holds the unpacked case in case/ and the report in report/ (see JobRunner._run).
    return as_uploaded(as_uploaded(message, work / "case", upload_name), work, "job")


def _case_folder(root: Path, name: str) -> CaseFiles:
    """The one folder in the extracted tree that holds NIfTI files, as a BraTS case."""
    folders = sorted({p.parent for p in root.rglob("*.nii*") if p.is_file()})
    if len(folders) != 1:
        found = "no NIfTI files" if not folders else f"NIfTI files in {len(folders)} folders"
        raise UserError(f"{name}: expected one BraTS case folder, found {found}")
    return find_case(folders[0])


def extract_case(name: str, stream: BinaryIO, entries, staging: Path, target: Path) -> CaseFiles:
    """Extract checked entries into a temp folder under `staging`, then move the case to `target`."""
    # Named with its owner, so a sweep removes what a killed server left (uploads hold patient data).
    tmp = partial_dir(staging / "upload", mode=0o700)
    try:
        with zipfile.ZipFile(stream) as archive:
            for info, rel in entries:
                dest = tmp.joinpath(*rel.parts)
                dest.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
        try:
            case = _case_folder(tmp, name)
        except UserError as exc:
            raise UserError(as_uploaded(exc.message, tmp, name), exc.field) from None
        target.parent.mkdir(parents=True, exist_ok=True)
        case.folder.rename(target)
        return find_case(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
