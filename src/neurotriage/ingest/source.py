"""A raw study's input, opened: a DICOM folder, a converter's NIfTI folder, or a .zip of either.

A zip is unpacked into a folder the caller provides, with its declared and actual sizes capped and
no member allowed outside that folder. A folder with NIfTI files at its top (or under a single
wrapping subfolder) is a converter's output; anything else is searched for DICOM files.
"""

from __future__ import annotations

import shutil
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import SimpleITK as sitk

from neurotriage.errors import UserError
from neurotriage.ingest.dicom import DicomSeries, StudyPatient, scan_dicom_folder
from neurotriage.ingest.dicom_volume import load_dicom_volume
from neurotriage.ingest.series import NIFTI_SUFFIXES, SeriesInfo, read_nifti_folder

MAX_ZIP_BYTES = 8 * 1024**3
MAX_ZIP_MEMBERS = 50_000
_CHUNK = 1 << 20


@dataclass(frozen=True)
class RawStudy:
    """The candidate series of one study, where they were read from, and the patient its DICOM headers name."""

    root: Path
    kind: str  # "dicom" or "nifti"
    series: list[SeriesInfo]
    patient: StudyPatient | None


def open_study(source: Path, unpack_to: Path) -> RawStudy:
    """The study at `source` (folder or .zip); a zip is unpacked into the empty folder `unpack_to`."""
    source = Path(source)
    if not source.exists():
        raise UserError(f"{source}: no such file or folder", field="input")
    if source.is_file():
        if not zipfile.is_zipfile(source):
            raise UserError(f"{source}: not a folder or a .zip of one", field="input")
        unzip(source, unpack_to)
        source = unpack_to
    root = _nifti_root(source)
    if root is not None:
        return RawStudy(root=root, kind="nifti", series=read_nifti_folder(root), patient=None)
    study = scan_dicom_folder(source)
    return RawStudy(root=source, kind="dicom", series=list(study.series), patient=study.patient)


def load_series(info: SeriesInfo) -> sitk.Image:
    """One series' voxels as a float32 SimpleITK image in LPS physical space."""
    if isinstance(info, DicomSeries):
        return load_dicom_volume(info).image
    try:
        image = sitk.ReadImage(str(info.source), sitk.sitkFloat32)
    except RuntimeError as exc:
        raise UserError(
            f"{info.source}: cannot read the image ({str(exc).strip().splitlines()[-1]})", field="input"
        ) from exc
    if image.GetDimension() != 3:
        raise UserError(
            f"{info.source}: a {image.GetDimension()}D image; a sequence needs one 3D volume", field="input"
        )
    return image


def unzip(archive: Path, folder: Path) -> None:
    """Unpack `archive` into `folder`, refusing members outside it and archives over the size caps."""
    with zipfile.ZipFile(archive) as zf:
        members = [m for m in zf.infolist() if not m.is_dir() and not is_mac_metadata(m.filename)]
        if len(members) > MAX_ZIP_MEMBERS:
            raise UserError(f"{archive}: {len(members)} files, over the limit of {MAX_ZIP_MEMBERS}", field="input")
        if sum(m.file_size for m in members) > MAX_ZIP_BYTES:
            raise UserError(f"{archive}: unpacks to over {MAX_ZIP_BYTES // 1024**3} GB", field="input")
        for member in members:
            _extract(zf, member, folder, archive)


def _extract(zf: zipfile.ZipFile, member: zipfile.ZipInfo, folder: Path, archive: Path) -> None:
    name = PurePosixPath(member.filename.replace("\\", "/"))
    if name.is_absolute() or ".." in name.parts or not name.parts:
        raise UserError(f"{archive}: member {member.filename!r} would unpack outside its folder", field="input")
    target = folder.joinpath(*name.parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    copy_member(zf, member, target, str(archive), field="input")


def copy_member(
    zf: zipfile.ZipFile, member: zipfile.ZipInfo, target: Path, label: str, field: str | None = None
) -> None:
    """Write one zip member to `target`, never more bytes than it declares; a fault is a UserError naming `label`."""
    written = 0
    try:
        with zf.open(member) as src, open(target, "wb") as dst:
            while chunk := src.read(_CHUNK):
                written += len(chunk)
                if written > member.file_size:  # a member that inflates past its declared size is a zip bomb
                    raise UserError(f"{label}: member {member.filename!r} is larger than declared", field)
                dst.write(chunk)
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as exc:
        raise UserError(f"{label}: cannot unpack {member.filename!r} ({exc})", field) from exc


def is_mac_metadata(name: str) -> bool:
    """Whether a zip member is macOS Finder metadata (a __MACOSX/ folder or a ._ resource fork), not a file."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    return bool(parts) and (parts[0] == "__MACOSX" or parts[-1].startswith("._"))


def _nifti_root(folder: Path) -> Path | None:
    """The folder holding the NIfTI series: `folder` itself, or its one subfolder when that is all it holds."""
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder", field="input")
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    if any(p.is_file() and p.name.endswith(NIFTI_SUFFIXES) for p in entries):
        return folder
    if len(entries) == 1 and entries[0].is_dir():
        return _nifti_root(entries[0])
    return None


def copy_series_files(series: DicomSeries, folder: Path) -> list[Path]:
    """Copy a DICOM series' files into `folder` (flat, numbered); returns the copies in the series' order."""
    folder.mkdir(parents=True, exist_ok=True)
    copies = []
    for index, path in enumerate(series.files):
        copy = folder / f"{index:05d}.dcm"
        shutil.copyfile(path, copy)
        copies.append(copy)
    return copies
