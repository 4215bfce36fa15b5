"""One candidate series of a raw study, described by its acquisition tags and its header geometry.

The tags use the DICOM keyword names (SeriesDescription, RepetitionTime, ...), which BIDS sidecars
share, so a NIfTI sidecar and a DICOM header fill the same model through `series_from_keywords`.
Only headers are read here, never pixel data.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import time
from pathlib import Path
from typing import Any

import nibabel as nib
from pydantic import BaseModel, ConfigDict

from neurotriage.errors import UserError
from neurotriage.imaging.io import check_declared_size

NIFTI_SUFFIXES = (".nii.gz", ".nii")
# A converter names a file <SeriesDescription>_<SeriesNumber>; the number is the last underscore part.
_NUMBERED_STEM = re.compile(r"^(?P<description>.+)_(?P<number>\d+)$")
_CODE_SEPARATORS = re.compile(r"[\\_\s]+")
# Placeholders some scanners write into ContrastBolusAgent when no agent was given.
_NO_AGENT = {"", "NONE", "NO", "N/A", "NA", "0"}


class SeriesInfo(BaseModel):
    """What identification needs to know about one series: its tags (times in ms) and its grid."""

    model_config = ConfigDict(frozen=True)

    source: Path
    series_description: str
    series_number: int | None = None
    protocol_name: str | None = None
    scanning_sequence: tuple[str, ...] = ()
    sequence_variant: tuple[str, ...] = ()
    sequence_name: str | None = None
    repetition_time_ms: float | None = None
    echo_time_ms: float | None = None
    inversion_time_ms: float | None = None
    contrast_agent: str | None = None
    acquisition_time: time | None = None
    image_type: tuple[str, ...] = ()
    body_part: str | None = None
    shape: tuple[int, ...]
    spacing: tuple[float, float, float]

    @property
    def derived(self) -> bool:
        """Whether the scanner marked the images as computed from other images."""
        return "DERIVED" in self.image_type

    @property
    def n_slices(self) -> int:
        """The number of slices: along the axis of widest spacing, else the shortest axis."""
        return self.shape[min(range(3), key=lambda axis: (-self.spacing[axis], self.shape[axis]))]

    @property
    def n_volumes(self) -> int:
        """The number of volumes (more than one for diffusion, perfusion or functional series)."""
        return self.shape[3] if len(self.shape) > 3 else 1

    @property
    def voxel_mm3(self) -> float:
        """The volume of one voxel in mm³."""
        return self.spacing[0] * self.spacing[1] * self.spacing[2]


def series_from_keywords(
    source: Path,
    keywords: Mapping[str, Any],
    *,
    shape: tuple[int, ...],
    spacing: tuple[float, float, float],
    times_in_seconds: bool,
) -> SeriesInfo:
    """A `SeriesInfo` from DICOM-keyword tags (BIDS gives times in seconds, DICOM in ms)."""
    scale = 1000.0 if times_in_seconds else 1.0
    agent = _text(keywords, "ContrastBolusAgent", source)
    return SeriesInfo(
        source=source,
        series_description=_text(keywords, "SeriesDescription", source) or "",
        series_number=_integer(keywords, "SeriesNumber", source),
        protocol_name=_text(keywords, "ProtocolName", source),
        scanning_sequence=_codes(keywords.get("ScanningSequence")),
        sequence_variant=_codes(keywords.get("SequenceVariant")),
        sequence_name=_text(keywords, "SequenceName", source),
        repetition_time_ms=_milliseconds(keywords, "RepetitionTime", scale, source),
        echo_time_ms=_milliseconds(keywords, "EchoTime", scale, source),
        inversion_time_ms=_milliseconds(keywords, "InversionTime", scale, source),
        contrast_agent=None if agent is None or agent.upper() in _NO_AGENT else agent,
        acquisition_time=_acquisition_time(keywords, source),
        image_type=_codes(keywords.get("ImageType")),
        body_part=_text(keywords, "BodyPartExamined", source),
        shape=shape,
        spacing=spacing,
    )


def read_nifti_series(path: Path | str) -> SeriesInfo:
    """A converter's NIfTI series: names from the file name, tags from its JSON sidecar if any."""
    path = Path(path)
    stem = nifti_stem(path)
    shape, spacing = _header_geometry(path)
    keywords = dict(_name_keywords(stem))
    sidecar = path.with_name(stem + ".json")
    if sidecar.is_file():
        keywords.update({key: value for key, value in _read_sidecar(sidecar).items() if value is not None})
    return series_from_keywords(path, keywords, shape=shape, spacing=spacing, times_in_seconds=True)


def read_nifti_folder(folder: Path | str) -> list[SeriesInfo]:
    """Every NIfTI series directly in a converter's output folder, in file-name order."""
    folder = Path(folder)
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(NIFTI_SUFFIXES))
    if not files:
        raise UserError(f"{folder}: no NIfTI series (.nii or .nii.gz) in this folder", field="input")
    return [read_nifti_series(path) for path in files]


def nifti_stem(path: Path) -> str:
    """The file name without its .nii or .nii.gz suffix."""
    for suffix in NIFTI_SUFFIXES:
        if path.name.endswith(suffix):
            return path.name[: -len(suffix)]
    raise UserError(f"{path}: not a NIfTI file (expected .nii or .nii.gz)", field="input")


def _name_keywords(stem: str) -> dict[str, Any]:
    match = _NUMBERED_STEM.match(stem)
    if match is None:
        return {"SeriesDescription": stem}
    return {"SeriesDescription": match["description"], "SeriesNumber": int(match["number"])}


def _header_geometry(path: Path) -> tuple[tuple[int, ...], tuple[float, float, float]]:
    try:
        header = nib.load(str(path)).header  # nibabel reads the header only until data is asked for
    except (OSError, ValueError, EOFError, nib.filebasedimages.ImageFileError) as exc:
        raise UserError(f"{path}: not a readable NIfTI header ({exc})", field="input") from exc
    check_declared_size(header, path, field="input")
    shape = tuple(int(n) for n in header.get_data_shape())
    if len(shape) < 3:
        raise UserError(f"{path}: a {len(shape)}D image; a series needs three spatial axes", field="input")
    zooms = header.get_zooms()
    return shape, (float(zooms[0]), float(zooms[1]), float(zooms[2]))


def _read_sidecar(path: Path) -> dict[str, Any]:
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read the JSON sidecar ({exc})", field="input") from exc
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})", field="input") from exc
    if not isinstance(content, dict):
        raise UserError(f"{path}: the JSON sidecar must be an object of tags", field="input")
    return content


def _text(keywords: Mapping[str, Any], key: str, source: Path) -> str | None:
    value = keywords.get(key)
    if value is None:
        return None
    if isinstance(value, list | tuple):
        value = "\\".join(str(item) for item in value)
    if not isinstance(value, str | int | float):
        raise UserError(f"{source}: tag {key} should be text, not {type(value).__name__}", field="input")
    return str(value).strip()


def _integer(keywords: Mapping[str, Any], key: str, source: Path) -> int | None:
    value = keywords.get(key)
    if value is None or value == "":
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        raise UserError(f"{source}: tag {key} should be a whole number, not {value!r}", field="input") from None


def _milliseconds(keywords: Mapping[str, Any], key: str, scale: float, source: Path) -> float | None:
    value = keywords.get(key)
    if isinstance(value, list | tuple):  # a multi-valued time (several echoes) counts by its first value
        value = value[0] if value else None
    if value is None or value == "":
        return None
    try:
        return float(value) * scale
    except (TypeError, ValueError):
        raise UserError(f"{source}: tag {key} should be a number, not {value!r}", field="input") from None


def _acquisition_time(keywords: Mapping[str, Any], source: Path) -> time | None:
    """BIDS writes HH:MM:SS.ffffff, DICOM HHMMSS.ffffff."""
    value = _text(keywords, "AcquisitionTime", source)
    if not value:
        return None
    digits, _, fraction = value.replace(":", "").partition(".")
    if not digits.isdigit() or len(digits) != 6 or (fraction and not fraction.isdigit()):
        raise UserError(f"{source}: tag AcquisitionTime should be HH:MM:SS, not {value!r}", field="input")
    try:
        micro = int(fraction[:6].ljust(6, "0")) if fraction else 0
        return time(int(digits[:2]), int(digits[2:4]), int(digits[4:]), micro)
    except ValueError:
        raise UserError(f"{source}: tag AcquisitionTime is not a time of day: {value!r}", field="input") from None


def _codes(value: Any) -> tuple[str, ...]:
    """Multi-valued code tags: DICOM lists, backslash strings, or a converter's underscore-joined string."""
    items = value if isinstance(value, list | tuple) else [] if value is None else [value]
    return tuple(code.upper() for item in items for code in _CODE_SEPARATORS.split(str(item)) if code)
