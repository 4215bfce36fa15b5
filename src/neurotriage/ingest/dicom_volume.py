"""One DICOM series' pixels as a SimpleITK volume in LPS patient space, with the file and frame of every slice.

Single-frame series (one file per slice, in any order on disk) and enhanced multi-frame objects (positions in
each frame's functional groups, orientation and pixel spacing shared or per frame) both load; the modality LUT
or rescale is applied. Slices are sorted along the normal of their plane, and the slice spacing comes from their
positions, never from SliceThickness. A series that is not one evenly spaced stack of parallel slices on one
grid (a gap, several echoes or time points at one position, mixed orientations) is refused by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut

from neurotriage.errors import UserError
from neurotriage.ingest.dicom import _SAME_POSITION_MM, DicomSeries, _item

# The largest deviation from an even stack, as a fraction of the slice gap: gaps differing by more than this
# are uneven, and slices shifted by more than this within their plane are not one stack.
UNEVEN = 0.01
# Tags the modality LUT reads; a multi-frame object may also give them per frame (Pixel Value Transformation).
_MODALITY_LUT = ("ModalityLUTSequence", "RescaleSlope", "RescaleIntercept")
_SAME_GRID_ATOL = 1e-4


class SourceFrame(NamedTuple):
    """Where one slice came from: its file, and its frame number (from 1) in a multi-frame file, else None."""

    path: Path
    frame: int | None


@dataclass(frozen=True, eq=False)
class DicomVolume:
    """A series as a float32 SimpleITK image in LPS space, and the source of each of its z slices."""

    image: sitk.Image
    frames: tuple[SourceFrame, ...]


@dataclass(frozen=True)
class _Plane:
    source: SourceFrame
    position: np.ndarray
    orientation: np.ndarray  # row direction, then column direction
    pixel_spacing: np.ndarray  # DICOM order: between rows, between columns
    pixels: np.ndarray


def load_dicom_volume(series: DicomSeries) -> DicomVolume:
    """Read a series' pixels into one volume: slices sorted along their normal, spacing from their positions."""
    planes = [plane for path in series.files for plane in _read_planes(path)]
    first = planes[0]
    _check_one_grid(series.source, planes)
    row, column = first.orientation[:3], first.orientation[3:]
    normal = np.cross(row, column)
    normal /= np.linalg.norm(normal)
    positions = np.array([plane.position for plane in planes])
    order = np.argsort(positions @ normal, kind="stable")
    gap = _slice_gap(series.source, positions[order], normal)
    image = sitk.GetImageFromArray(np.stack([planes[i].pixels for i in order]))  # (z, y, x) = (slice, row, col)
    image.SetOrigin(positions[order[0]].tolist())
    image.SetSpacing((float(first.pixel_spacing[1]), float(first.pixel_spacing[0]), gap))
    image.SetDirection(np.column_stack([row, column, normal]).ravel().tolist())
    return DicomVolume(image, tuple(planes[i].source for i in order))


def _read_planes(path: Path) -> list[_Plane]:
    """Every frame of one file as a plane with its geometry and rescaled pixels."""
    ds, pixels = _read(path)
    groups = ds.get("PerFrameFunctionalGroupsSequence")
    if not groups:
        if len(pixels) != 1:
            raise UserError(f"{path}: {len(pixels)} frames without per-frame positions", field="input")
        return [_plane(SourceFrame(path, None), ds, pixels[0])]
    if len(groups) != len(pixels):
        raise UserError(f"{path}: {len(groups)} per-frame functional groups for {len(pixels)} frames", field="input")
    shared = _item(ds, "SharedFunctionalGroupsSequence")
    return [
        _plane(SourceFrame(path, i + 1), _frame_tags(ds, shared, group), pixels[i]) for i, group in enumerate(groups)
    ]


def _read(path: Path) -> tuple[Dataset, np.ndarray]:
    """The dataset and its pixels as (frames, rows, columns)."""
    try:
        ds = pydicom.dcmread(path)
        pixels = ds.pixel_array
    except Exception as exc:  # pydicom and its decoders raise many types; any of them means unreadable pixels
        raise UserError(f"{path}: cannot read the pixel data ({type(exc).__name__}: {exc})", field="input") from exc
    if int(ds.get("SamplesPerPixel") or 1) != 1:
        raise UserError(f"{path}: a colour image, not a greyscale MR slice", field="input")
    return ds, pixels.reshape(-1, int(ds.Rows), int(ds.Columns))


def _frame_tags(ds: Dataset, shared: Dataset | None, group: Dataset) -> Dataset:
    """One frame's functional-group macros flattened into one dataset, its own values over the shared ones."""
    tags = Dataset()
    for keyword in _MODALITY_LUT:
        if keyword in ds:
            tags[keyword] = ds[keyword]
    for macros in (shared, group):
        for element in macros or ():
            if element.VR == "SQ" and element.value:
                tags.update(element.value[0])
    return tags


def _plane(source: SourceFrame, tags: Dataset, pixels: np.ndarray) -> _Plane:
    return _Plane(
        source=source,
        position=_floats(source, tags, "ImagePositionPatient", 3),
        orientation=_floats(source, tags, "ImageOrientationPatient", 6),
        pixel_spacing=_floats(source, tags, "PixelSpacing", 2),
        pixels=apply_modality_lut(pixels, tags).astype(np.float32),
    )


def _floats(source: SourceFrame, tags: Dataset, keyword: str, count: int) -> np.ndarray:
    value = tags.get(keyword)
    if value is None or len(value) != count:
        raise UserError(f"{_name(source)}: no {keyword} with {count} values", field="input")
    return np.array([float(v) for v in value])


def _name(source: SourceFrame) -> str:
    return str(source.path) if source.frame is None else f"{source.path} frame {source.frame}"


def _check_one_grid(series_source: Path, planes: list[_Plane]) -> None:
    """Refuse slices whose orientation, pixel spacing or size differ from the first slice's."""
    first = planes[0]
    for plane in planes[1:]:
        same = (
            plane.pixels.shape == first.pixels.shape
            and np.allclose(plane.orientation, first.orientation, atol=_SAME_GRID_ATOL)
            and np.allclose(plane.pixel_spacing, first.pixel_spacing, atol=_SAME_GRID_ATOL)
        )
        if not same:
            raise UserError(
                f"{series_source}: {_name(plane.source)} differs from {_name(first.source)} in orientation, "
                "pixel spacing or size; a volume needs parallel slices on one grid",
                field="input",
            )


def _slice_gap(series_source: Path, positions: np.ndarray, normal: np.ndarray) -> float:
    """The even spacing of sorted slice positions along `normal`; refuse repeats, gaps and a sheared stack."""
    if len(positions) < 2:
        raise UserError(f"{series_source}: a single slice, not a volume", field="input")
    heights = positions @ normal
    gaps = np.diff(heights)
    if gaps.min() < _SAME_POSITION_MM:
        distinct = int(np.sum(gaps >= _SAME_POSITION_MM)) + 1
        raise UserError(
            f"{series_source}: {len(positions)} images at {distinct} slice positions (several echoes or time "
            "points); a volume needs one image per position",
            field="input",
        )
    gap = float(heights[-1] - heights[0]) / (len(heights) - 1)
    if gaps.max() - gaps.min() > UNEVEN * gap:
        raise UserError(
            f"{series_source}: slices are not evenly spaced (gaps from {gaps.min():.2f} to {gaps.max():.2f} mm)",
            field="input",
        )
    in_plane = positions - positions[0] - np.outer(heights - heights[0], normal)
    shift = float(np.linalg.norm(in_plane, axis=1).max())
    if shift > UNEVEN * gap:
        raise UserError(
            f"{series_source}: slices are shifted within their plane by up to {shift:.2f} mm", field="input"
        )
    return gap
