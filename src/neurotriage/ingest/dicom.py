"""A folder of DICOM files (any nesting, single-frame or enhanced multi-frame) as the series of one study.

Only headers are read (`stop_before_pixels`), so a series is measured and refused for its size before
any pixel data is touched. Files without the DICOM preamble are not DICOM and are counted, not read;
a file that has the preamble but does not parse into a DICOM object is corrupt and refused by name.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydantic import BaseModel
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

from neurotriage.errors import UserError
from neurotriage.imaging.io import MAX_BYTES, MAX_VOXELS
from neurotriage.ingest.series import SeriesInfo, series_from_keywords

_MAGIC_OFFSET, _MAGIC = 128, b"DICM"
# The tags identification reads, by their DICOM keywords (see `series_from_keywords`).
_KEYWORDS = (
    "SeriesDescription",
    "SeriesNumber",
    "ProtocolName",
    "ScanningSequence",
    "SequenceVariant",
    "SequenceName",
    "RepetitionTime",
    "EchoTime",
    "InversionTime",
    "ContrastBolusAgent",
    "ImageType",
    "BodyPartExamined",
)
# Enhanced multi-frame objects keep these in functional-group macros: (macro sequence, keyword there).
_FUNCTIONAL = {
    "RepetitionTime": ("MRTimingAndRelatedParametersSequence", "RepetitionTime"),
    "EchoTime": ("MREchoSequence", "EffectiveEchoTime"),
    "InversionTime": ("MRModifierSequence", "InversionTimes"),
    "PixelSpacing": ("PixelMeasuresSequence", "PixelSpacing"),
    "SliceThickness": ("PixelMeasuresSequence", "SliceThickness"),
    "SpacingBetweenSlices": ("PixelMeasuresSequence", "SpacingBetweenSlices"),
    "ImageOrientationPatient": ("PlaneOrientationSequence", "ImageOrientationPatient"),
}
_GROUPS = ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence")
_DATETIME_TIME = re.compile(r"\d{8}(\d{6}(?:\.\d+)?)")  # YYYYMMDD then HHMMSS.ffffff, before any offset
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9+-]+")
# Slice positions closer than this along the normal are the same slice (another echo or time point).
_SAME_POSITION_MM = 0.01


class DicomSeries(SeriesInfo):
    """A `SeriesInfo` read from DICOM headers, with the series' UID and its files."""

    series_uid: str
    files: tuple[Path, ...]


class StudyPatient(BaseModel):
    """Who and when the study is, from its headers: for the wrong-patient check."""

    patient_id: str | None = None
    issuer: str | None = None  # IssuerOfPatientID: the namespace of patient_id
    patient_name: str | None = None
    birth_date: date | None = None
    study_date: date | None = None


@dataclass(frozen=True)
class DicomStudy:
    """The series of one DICOM study folder, its patient, and the files that are not DICOM images."""

    series: list[DicomSeries]
    patient: StudyPatient
    ignored: tuple[Path, ...]


@dataclass(frozen=True)
class _Header:
    path: Path
    ds: Dataset


def read_dicom_folder(folder: Path | str) -> list[SeriesInfo]:
    """Every image series of the DICOM study in `folder`, in series-number order."""
    return list(scan_dicom_folder(folder).series)


def study_patient(folder: Path | str) -> StudyPatient:
    """The patient and study date the DICOM study in `folder` declares."""
    return scan_dicom_folder(folder).patient


def declared_study_date(folder: Path | str) -> date | None:
    """The StudyDate of the first DICOM image under `folder` (in path order, the file `study_patient` reads it
    from), None when there is none. A header or date that cannot be read gives None too: `scan_dicom_folder`
    names such a file when the study is read."""
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        try:
            ds = _read_header(path)
            if ds is not None and _is_image(ds, path):
                return _date(_Header(path, ds), "StudyDate")
        except UserError:
            return None
    return None


def scan_dicom_folder(folder: Path | str) -> DicomStudy:
    """Read every header under `folder`; refuse corrupt files, mixed patients or studies, oversized series."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: not a folder", field="input")
    images: list[_Header] = []
    ignored: list[Path] = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        ds = _read_header(path)
        if ds is not None and _is_image(ds, path):
            images.append(_Header(path, ds))
        else:
            ignored.append(path)
    if not images:
        raise UserError(f"{folder}: no DICOM images in this folder ({len(ignored)} other files)", field="input")
    for keyword, what in (("PatientID", "patient"), ("StudyInstanceUID", "study")):
        _check_same(images, keyword, what)
    groups: dict[str, list[_Header]] = {}
    for header in images:
        groups.setdefault(str(header.ds.SeriesInstanceUID), []).append(header)
    sources = _sources(groups)
    series = [_series(uid, sources[uid], headers) for uid, headers in groups.items()]
    series.sort(key=lambda s: (s.series_number is None, s.series_number or 0, str(s.source)))
    return DicomStudy(series=series, patient=_patient(images[0]), ignored=tuple(ignored))


def _read_header(path: Path) -> Dataset | None:
    """The file's header, or None when the file is not DICOM (no preamble and DICM magic)."""
    try:
        with path.open("rb") as stream:
            stream.seek(_MAGIC_OFFSET)
            if stream.read(len(_MAGIC)) != _MAGIC:
                return None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})", field="input") from exc
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=False)
    except Exception as exc:  # pydicom raises many types on damaged data; any of them means a corrupt file
        raise UserError(f"{path}: a corrupt DICOM file ({type(exc).__name__}: {exc})", field="input") from exc
    if "SOPClassUID" not in ds and "MediaStorageSOPClassUID" not in ds.file_meta:
        # pydicom stops quietly at a premature end of file; every DICOM object names its SOP class.
        raise UserError(f"{path}: a corrupt DICOM file (no SOP class: truncated or damaged header)", field="input")
    return ds


def _is_image(ds: Dataset, path: Path) -> bool:
    """Whether the object is an image; an image-storage object missing its image tags is refused."""
    sop_class = ds.get("SOPClassUID") or ds.file_meta.get("MediaStorageSOPClassUID")
    if "Rows" not in ds and "Image Storage" not in getattr(sop_class, "name", ""):
        return False  # a DICOMDIR, structured report, presentation state, ...
    missing = [keyword for keyword in ("Rows", "Columns", "SeriesInstanceUID") if not ds.get(keyword)]
    if missing:
        raise UserError(f"{path}: a corrupt DICOM image (no {', '.join(missing)})", field="input")
    return True


def _check_same(images: list[_Header], keyword: str, what: str) -> None:
    first = images[0]
    expected = str(first.ds.get(keyword, ""))
    for header in images[1:]:
        value = str(header.ds.get(keyword, ""))
        if value != expected:
            raise UserError(
                f"{header.path}: {keyword} {value!r} differs from {expected!r} in {first.path}; "
                f"a study folder must hold one {what}",
                field="input",
            )


def _sources(groups: dict[str, list[_Header]]) -> dict[str, Path]:
    """Each series' own folder, or a converter-style name in the folder it shares with other series."""
    folders = {uid: Path(os.path.commonpath([h.path.parent for h in headers])) for uid, headers in groups.items()}
    sources = {}
    for uid, folder in folders.items():
        shared = any(h.path.is_relative_to(folder) for other, hs in groups.items() if other != uid for h in hs)
        sources[uid] = folder / _series_name(groups[uid][0].ds) if shared else folder
    return sources


def _series_name(ds: Dataset) -> str:
    """<SeriesDescription>_<SeriesNumber>, as a converter names a series' file."""
    description = _UNSAFE_NAME.sub("_", str(ds.get("SeriesDescription") or "series")).strip("_") or "series"
    number = ds.get("SeriesNumber")
    return f"{description}_{number}" if number not in (None, "") else description


def _series(uid: str, source: Path, headers: list[_Header]) -> DicomSeries:
    _check_size(source, headers)
    shape, spacing = _geometry(headers)
    first = headers[0].ds
    keywords = {keyword: _plain(value) for keyword in _KEYWORDS if (value := _tag(first, keyword)) not in (None, "")}
    times = [t for h in headers if (t := _acquisition_time(h.ds))]
    if times:
        keywords["AcquisitionTime"] = min(times)
    info = series_from_keywords(source, keywords, shape=shape, spacing=spacing, times_in_seconds=False)
    return DicomSeries(**dict(info), series_uid=uid, files=tuple(h.path for h in headers))


def _check_size(source: Path, headers: list[_Header]) -> None:
    """Refuse a series too large to hold, from the sizes its headers declare."""
    voxels = [int(h.ds.Rows) * int(h.ds.Columns) * _frames(h) for h in headers]
    size = sum(n * _bytes_per_voxel(h.ds) for n, h in zip(voxels, headers, strict=True))
    first = headers[0].ds
    declared = f"{first.Rows}x{first.Columns} pixels, {sum(_frames(h) for h in headers)} frames"
    if sum(voxels) > MAX_VOXELS:
        raise UserError(f"{source}: the series declares {declared}, over 1024x1024x1024 voxels", field="input")
    if size > MAX_BYTES:
        raise UserError(f"{source}: the series declares {declared}, over 2 GB of pixel data", field="input")


def _bytes_per_voxel(ds: Dataset) -> int:
    """Decompressed bytes per voxel; MR pixels are 16-bit when the header does not say."""
    return int(ds.get("SamplesPerPixel") or 1) * math.ceil(int(ds.get("BitsAllocated") or 16) / 8)


def _frames(header: _Header) -> int:
    value = header.ds.get("NumberOfFrames")
    try:
        return int(value) if value not in (None, "") else 1
    except (TypeError, ValueError):
        raise UserError(
            f"{header.path}: tag NumberOfFrames should be a whole number, not {value!r}", field="input"
        ) from None


def _geometry(headers: list[_Header]) -> tuple[tuple[int, ...], tuple[float, float, float]]:
    """(rows, columns, slices[, volumes]) and the spacing between rows, columns and slices in mm."""
    first = headers[0].ds
    frames = sum(_frames(h) for h in headers)
    slices, gap = frames, None
    normal = _normal(first)
    positions = [position for h in headers for position in _positions(h.ds)]
    if normal is not None and len(positions) == frames:
        steps = np.diff(np.sort(np.asarray(positions) @ normal))
        steps = steps[steps > _SAME_POSITION_MM]
        if len(steps):
            gap = float(np.median(steps))
            if frames % (len(steps) + 1) == 0:
                slices = len(steps) + 1
    pixel = _tag(first, "PixelSpacing") or (1.0, 1.0)
    spacing = (float(pixel[0]), float(pixel[1]), gap or _tag_spacing(first))
    volumes = frames // slices
    return (int(first.Rows), int(first.Columns), slices, *((volumes,) if volumes > 1 else ())), spacing


def _tag_spacing(ds: Dataset) -> float:
    """The slice spacing the tags declare; 1 mm for a lone slice that declares none (a scout)."""
    for keyword in ("SpacingBetweenSlices", "SliceThickness"):
        value = _tag(ds, keyword)
        if value not in (None, "") and float(value) > 0:
            return float(value)
    return 1.0


def _normal(ds: Dataset) -> np.ndarray | None:
    orientation = _tag(ds, "ImageOrientationPatient")
    if orientation is None or len(orientation) != 6:
        return None
    normal = np.cross(np.asarray(orientation[:3], float), np.asarray(orientation[3:], float))
    length = np.linalg.norm(normal)
    return normal / length if length > 0 else None


def _positions(ds: Dataset) -> Iterator[tuple[float, float, float]]:
    """ImagePositionPatient of every frame: one per single-frame file, one per frame of a multi-frame one."""
    frames = ds.get("PerFrameFunctionalGroupsSequence")
    planes = [_item(frame, "PlanePositionSequence") for frame in frames] if frames else [ds]
    for plane in planes:
        position = plane.get("ImagePositionPatient") if plane is not None else None
        if position is not None and len(position) == 3:
            yield (float(position[0]), float(position[1]), float(position[2]))


def _tag(ds: Dataset, keyword: str) -> Any:
    """A tag's value, looked up in the functional groups of a multi-frame object when not at the top."""
    value = ds.get(keyword)
    if value not in (None, "") or keyword not in _FUNCTIONAL:
        return value
    macro, inner = _FUNCTIONAL[keyword]
    for group in _GROUPS:
        item = _item(_item(ds, group), macro)
        if item is not None and item.get(inner) not in (None, ""):
            return item.get(inner)
    return None


def _item(ds: Dataset | None, keyword: str) -> Dataset | None:
    """The first item of a sequence, or None."""
    sequence = ds.get(keyword) if ds is not None else None
    return sequence[0] if sequence else None


def _plain(value: Any) -> Any:
    """pydicom values as the plain Python values `series_from_keywords` takes."""
    if isinstance(value, MultiValue | list):
        return [_plain(item) for item in value]
    if isinstance(value, PersonName):
        return str(value)
    return value


def _acquisition_time(ds: Dataset) -> str | None:
    """AcquisitionTime, or the time part of a multi-frame object's AcquisitionDateTime."""
    value = str(ds.get("AcquisitionTime") or "").strip()
    if value:
        return value
    match = _DATETIME_TIME.match(str(ds.get("AcquisitionDateTime") or "").strip())
    return match[1] if match else None


def _patient(header: _Header) -> StudyPatient:
    ds = header.ds
    return StudyPatient(
        patient_id=str(ds.get("PatientID") or "").strip() or None,
        issuer=str(ds.get("IssuerOfPatientID") or "").strip() or None,
        patient_name=str(ds.get("PatientName") or "").strip() or None,
        birth_date=_date(header, "PatientBirthDate"),
        study_date=_date(header, "StudyDate"),
    )


def dicom_date(value: str | None) -> date | None:
    """A DICOM DA value (YYYYMMDD) as a date, None when empty; ValueError when it is not a date."""
    value = (value or "").strip()
    if not value:
        return None
    return datetime.strptime(value.replace(".", ""), "%Y%m%d").date()  # old ACR-NEMA dates have dots


def _date(header: _Header, keyword: str) -> date | None:
    value = str(header.ds.get(keyword) or "")
    try:
        return dicom_date(value)
    except ValueError:
        raise UserError(
            f"{header.path}: tag {keyword} should be a date YYYYMMDD, not {value.strip()!r}", field="input"
        ) from None
