"""A BraTS-space label map taken back to the patient's own space: the native T1ce grid the study was acquired on.

Labels go through the inverse of the saved template transform (native T1ce point to BraTS point)
with nearest-neighbour interpolation, so they stay labels.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import SimpleITK as sitk
from pydantic import BaseModel, ConfigDict

from neurotriage.errors import UserError
from neurotriage.ingest.dicom import scan_dicom_folder
from neurotriage.ingest.dicom_volume import load_dicom_volume
from neurotriage.ingest.grid import brats_image
from neurotriage.ingest.layout import INGEST_FOLDER, NATIVE_T1CE, RECORD_NAME, T1CE_DICOM, TEMPLATE_TRANSFORM


class NativeCase(BaseModel):
    """A case's native T1ce (nibabel array order and RAS affine) and, for DICOM input, its copied series folder."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    t1ce: np.ndarray
    affine: np.ndarray
    grid: sitk.Image
    to_brats: sitk.Transform
    dicom_folder: Path | None


def is_ingested(case_dir: Path) -> bool:
    """Whether the case folder was written by `ingest` (it has ingest/ingest.json)."""
    return (Path(case_dir) / INGEST_FOLDER / RECORD_NAME).is_file()


def load_native(case_dir: Path) -> NativeCase:
    """The native T1ce and the transforms `ingest` saved in `case_dir/ingest/`."""
    folder = Path(case_dir) / INGEST_FOLDER
    try:
        image = nib.load(str(folder / NATIVE_T1CE))
        grid = sitk.ReadImage(str(folder / NATIVE_T1CE), sitk.sitkFloat32)
        to_native = sitk.ReadTransform(str(folder / TEMPLATE_TRANSFORM))
    except (OSError, RuntimeError) as exc:
        raise UserError(f"{folder}: the ingest folder is incomplete ({exc})", field="case") from exc
    dicom = folder / T1CE_DICOM
    return NativeCase(
        t1ce=np.asanyarray(image.dataobj).astype(np.float32),
        affine=image.affine,
        grid=grid,
        to_brats=to_native.GetInverse(),
        dicom_folder=dicom if dicom.is_dir() else None,
    )


def labels_on_grid(labels_brats: np.ndarray, native: NativeCase, grid: sitk.Image | None = None) -> np.ndarray:
    """BraTS-space labels resampled (nearest neighbour) onto `grid` (default: native T1ce), in (z, y, x) order."""
    moving = brats_image(labels_brats.astype(np.uint8))
    resampled = sitk.Resample(moving, grid or native.grid, native.to_brats, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return sitk.GetArrayFromImage(resampled)


def native_labels(labels_brats: np.ndarray, native: NativeCase) -> np.ndarray:
    """BraTS-space labels on the native T1ce grid, in the native NIfTI's array order (as nibabel reads it)."""
    return labels_on_grid(labels_brats, native).transpose(2, 1, 0)


class NativeSegmentation(BaseModel):
    """A segmentation in the patient's own space: internal labels on the native T1ce grid, with that T1ce."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    t1ce: np.ndarray
    labels: np.ndarray
    affine: np.ndarray
    dicom_folder: Path | None  # the T1ce's DICOM series, which a DICOM SEG references


def native_segmentation(labels_brats: np.ndarray, case_dir: Path) -> NativeSegmentation:
    """An ingested case's BraTS-space labels taken to its native T1ce grid."""
    native = load_native(case_dir)
    return NativeSegmentation(
        t1ce=native.t1ce,
        labels=native_labels(labels_brats, native),
        affine=native.affine,
        dicom_folder=native.dicom_folder,
    )


def write_native_dicom_seg(native: NativeSegmentation, path: Path) -> Path:
    """The native segmentation as a DICOM SEG referencing the T1ce series the case was ingested from."""
    from neurotriage.ingest.dicom_seg import write_dicom_seg  # highdicom: only when a SEG is written

    if native.dicom_folder is None:
        raise ValueError("this case was not ingested from DICOM: there is no series for a SEG to reference")
    (series,) = scan_dicom_folder(native.dicom_folder).series
    volume = load_dicom_volume(series)
    return write_dicom_seg(np.ascontiguousarray(native.labels.transpose(2, 1, 0)), volume, path)
