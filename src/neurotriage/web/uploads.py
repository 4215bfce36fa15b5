"""Receive a study as a zip: size and type checks, zip-slip-safe extraction, atomic move.

A zip holds a BraTS case folder or a raw study (DICOM files in any nesting, or a converter's NIfTI
series). Every entry is checked before anything is written, so a hostile zip writes nothing. The zip
is extracted into a private temporary folder and only renamed into the job's folder once it has been
recognised: a BraTS case (files with BraTS names) must be complete, and its one folder is kept; any
other tree must hold DICOM or NIfTI files and is kept whole, for `diagnose` to ingest.
"""

from __future__ import annotations

import gzip
import math
import secrets
import shutil
import stat
import zipfile
import zlib
from datetime import date
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from neurotriage.diagnosis.raw import raw_case_dir
from neurotriage.errors import UserError
from neurotriage.files import CHUNK, partial_dir, sha256_chunks
from neurotriage.imaging.io import CaseFiles, check_declared_size, find_case, read_nifti_header
from neurotriage.imaging.naming import split_name
from neurotriage.ingest.dicom import declared_study_date
from neurotriage.ingest.series import NIFTI_SUFFIXES
from neurotriage.ingest.source import MAX_ZIP_BYTES, copy_member, is_mac_metadata

# A raw DICOM study is one file per slice: hundreds to thousands of files. The cap still refuses a
# bomb of tiny files, whose folder entries alone would cost more than any study.
MAX_ENTRIES = 20_000
# Extracted bytes allowed per uploaded byte. A .nii whose header passes the size caps is exempt: its
# background deflates far more than 8x, and what it expands to is bounded by its header instead, with
# the whole upload never expanding past what `ingest` accepts from a zip.
INFLATION = 8
# DICOM slices with an empty background compress far more than 8x, so a ratio alone would refuse real
# studies of a modest upload; this floor (room for thousands of 512x512 slices) still bounds what a
# bomb can write, and a large upload keeps the ratio.
EXPANDED_FLOOR = 2 * 1024**3
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
DICOM_MAGIC_AT = 128  # a DICOM file's 128-byte preamble is followed by b"DICM"


def check_size(name: str, size: int, limit: int) -> None:
    """Refuse an upload over the configured limit."""
    if size > limit:
        raise UserError(f"{name}: upload is {size:,} bytes, over the limit of {limit:,} bytes")


def expanded_limit(size: int) -> int:
    """The most bytes an upload of `size` bytes may expand to."""
    return max(INFLATION * size, EXPANDED_FLOOR)


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
        raise UserError(f"{name}: expected a .zip of one study (a BraTS case folder, DICOM files or NIfTI series)")
    check_size(name, size, limit)
    stream.seek(0)
    if stream.read(4) not in ZIP_MAGIC:
        raise UserError(f"{name}: not a zip file")
    stream.seek(0)
    try:
        with zipfile.ZipFile(stream) as archive:
            infos = [i for i in archive.infolist() if not is_mac_metadata(i.filename)]
            if len(infos) > MAX_ENTRIES:
                raise UserError(f"{name}: {len(infos)} entries, more than {MAX_ENTRIES}; upload one study")
            declared = sum(_nifti_declared(archive, i, name) for i in infos)
    except zipfile.BadZipFile as exc:
        raise UserError(f"{name}: damaged zip ({exc})") from None
    expanded = sum(i.file_size for i in infos)
    if expanded - declared > expanded_limit(size) or expanded > max(expanded_limit(size), MAX_ZIP_BYTES):
        raise UserError(f"{name}: expands to far more than its size; refused as a possible zip bomb")
    entries = [(info, path) for info in infos if (path := _safe_member(info)) is not None]
    if not entries:
        raise UserError(f"{name}: the zip is empty")
    return entries


def _nifti_declared(archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> int:
    """Check a NIfTI member's header against the size caps; returns the bytes of an uncompressed .nii member
    that its header accounts for (0 for other members: a .nii.gz is read only as far as its header declares)."""
    lower = info.filename.lower()
    if info.is_dir() or not lower.endswith(NIFTI_SUFFIXES):
        return 0
    label = f"{name}: {info.filename}"
    try:
        with archive.open(info) as member:
            stream = gzip.GzipFile(fileobj=member) if lower.endswith(".gz") else member
            header = read_nifti_header(stream, label)
    except (OSError, EOFError, zlib.error) as exc:
        raise UserError(f"{label}: cannot read its NIfTI header ({exc})") from None
    check_declared_size(header, label)
    if lower.endswith(".gz"):
        return 0
    data = math.prod(header.get_data_shape()) * header.get_data_dtype().itemsize
    return min(info.file_size, int(header.get_data_offset()) + data)


def upload_digest(stream: BinaryIO) -> str:
    """The SHA-256 of an uploaded file, read from its start (the same upload twice is flagged, not refused)."""
    stream.seek(0)
    digest = sha256_chunks(iter(lambda: stream.read(CHUNK), b""))
    stream.seek(0)
    return digest


def as_uploaded(message: str, folder: Path, name: str) -> str:
    """The message with the server `folder` holding an upload shown as the upload's own `name`."""
    return message.replace(str(folder), name)


def new_case_folder(work: Path) -> Path:
    """Where a new job in `work` keeps its upload: jobs/<id>/job-<id>-<random>. A raw study is ingested into
    NEUROTRIAGE_HOME/cases/<that name>, so no two jobs share a case there, even jobs of another database."""
    return work / f"job-{work.name}-{secrets.token_hex(4)}"


def job_error(message: str, case: Path, upload_name: str) -> str:
    """A job's error as its user may see it: no server path, its `case` folder named as it was uploaded."""
    # The job's folder (case's parent) also holds report/ (see JobRunner._run); a raw study's ingested
    # case is in the cases folder of NEUROTRIAGE_HOME.
    named = as_uploaded(as_uploaded(message, case, upload_name), case.parent, "job")
    return as_uploaded(named, raw_case_dir(case).parent, "cases")


def study_date(folder: Path, name: str, typed: date | None) -> date | None:
    """When the unpacked upload in `folder` was taken: a DICOM study's StudyDate, else the date typed at upload.
    A typed date that contradicts the StudyDate is refused, naming the field."""
    declared = declared_study_date(folder)
    if declared is not None and typed is not None and declared != typed:
        raise UserError(
            f"study_date: {name} is a DICOM study dated {declared.isoformat()} (its StudyDate), not "
            f"{typed.isoformat()}; leave the study date empty or correct it",
            field="study_date",
        )
    return declared or typed


def _brats_case(root: Path, name: str) -> CaseFiles | None:
    """The one folder in the extracted tree that holds BraTS-named files, as a BraTS case; None without any."""
    folders = sorted({p.parent for p in root.rglob("*") if p.is_file() and split_name(p.name) is not None})
    if len(folders) > 1:
        raise UserError(f"{name}: expected one BraTS case folder, found BraTS-named files in {len(folders)} folders")
    return find_case(folders[0]) if folders else None


def _is_image(path: Path) -> bool:
    """Whether the file is a NIfTI image by name or a DICOM file by its magic bytes."""
    if path.name.lower().endswith(NIFTI_SUFFIXES):
        return True
    with open(path, "rb") as file:
        return file.read(DICOM_MAGIC_AT + 4)[DICOM_MAGIC_AT:] == b"DICM"


def _check_raw(root: Path, name: str) -> None:
    """Refuse a tree that holds neither DICOM nor NIfTI files (what they hold, ingest judges)."""
    if not any(_is_image(p) for p in root.rglob("*") if p.is_file()):
        raise UserError(f"{name}: no BraTS case, DICOM or NIfTI files found")


def extract_study(name: str, stream: BinaryIO, entries, staging: Path, target: Path) -> CaseFiles | None:
    """Extract checked entries into a temp folder under `staging`, then move the study to `target`: a BraTS
    case's folder (returned), or the whole tree of a raw study (returns None)."""
    # Named with its owner, so a sweep removes what a killed server left (uploads hold patient data).
    tmp = partial_dir(staging / "upload", mode=0o700)
    try:
        try:
            with zipfile.ZipFile(stream) as archive:
                for info, rel in entries:
                    dest = tmp.joinpath(*rel.parts)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    copy_member(archive, info, dest, name)
            case = _brats_case(tmp, name)
            if case is None:
                _check_raw(tmp, name)
        except UserError as exc:
            raise UserError(as_uploaded(exc.message, tmp, name), exc.field) from None
        target.parent.mkdir(parents=True, exist_ok=True)
        (case.folder if case is not None else tmp).rename(target)
        return find_case(target) if case is not None else None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
