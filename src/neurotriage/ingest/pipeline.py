"""`ingest`: a raw study (DICOM or converter NIfTI, skull on, any pose) to a BraTS case on the SRI24 grid.

Steps: identify the series; put the T1ce on a 1 mm grid (the reference) and register T1, T2 and
FLAIR to it; strip the skull from the T1 on that grid; register the T1 brain rigidly to the SRI24
template; resample every series once, through its composed transforms, onto the BraTS grid; gate
on quality; write the case. The case folder is built aside and appears whole or not at all.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from datetime import date
from pathlib import Path
from typing import Protocol

import numpy as np
import SimpleITK as sitk
from pydantic import BaseModel

from neurotriage.errors import UserError
from neurotriage.files import atomic_dir, partial_dir, write_json_atomic
from neurotriage.imaging.io import write_nifti
from neurotriage.imaging.naming import BRATS2020, SEQUENCES
from neurotriage.imaging.sri24 import BRATS_AFFINE
from neurotriage.ingest import qc, skullstrip
from neurotriage.ingest.coregister import coregister, reference_grid, template_transform
from neurotriage.ingest.dicom import DicomSeries, StudyPatient
from neurotriage.ingest.grid import from_ras_array, ras_array, template_image, to_brats_grid
from neurotriage.ingest.identify import SequenceChoice, SeriesMap, SkippedSeries, identify
from neurotriage.ingest.layout import (
    BRAIN_MASK,
    INGEST_FOLDER,
    NATIVE_T1CE,
    QC_FIGURE,
    RECORD_NAME,
    T1CE_DICOM,
    TEMPLATE_TRANSFORM,
)
from neurotriage.ingest.source import copy_series_files, load_series, open_study

STAGES = (
    "read study",
    "load series",
    "co-register",
    "skull strip",
    "register to template",
    "resample to BraTS",
    "write case",
)


class Timer(Protocol):
    """Anything with `stage(name)`, a context manager timing one step, and the `timings` it took (`StageTimer`)."""

    timings: dict[str, float]

    def stage(self, name: str) -> AbstractContextManager[None]: ...


class IngestRecord(BaseModel):
    """ingest.json: what was read, which series became which sequence and why, timings and the quality gate."""

    id: str
    case_dir: Path
    input: Path
    kind: str
    sequences: dict[str, SequenceChoice]
    skipped: list[SkippedSeries]
    patient: StudyPatient | None
    study_date: date | None
    warnings: list[str]
    transforms: dict[str, str]
    timings_s: dict[str, float]
    qc: qc.QualityCheck


class _Registered(BaseModel, arbitrary_types_allowed=True):
    series_transforms: dict[str, sitk.Transform]  # reference (T1ce) point -> series point
    brats_to_reference: sitk.Euler3DTransform  # BraTS point -> reference point
    mask_reference: sitk.Image
    brain_ml: float


def ingest_study(
    source: Path,
    case_dir: Path,
    *,
    case_id: str | None = None,
    overrides: Mapping[str, Path] | None = None,
    timer: Timer,
    check_patient: Callable[[StudyPatient | None], None] | None = None,
) -> IngestRecord:
    """Ingest the raw study at `source` into the BraTS case folder `case_dir`; raise `UserError` on bad input.

    `check_patient` sees the patient the study's headers name before any pixel is read, and may refuse it."""
    case_dir = Path(case_dir)
    case_id = case_id or case_dir.name
    _check_case_dir(case_dir)
    # A zip is unpacked beside the case, hidden and named with its owner like every staging folder, so the
    # start-up sweep removes what a killed run left (it holds patient data).
    scratch = partial_dir(case_dir.parent / f"{case_dir.name}-unpacked", mode=0o700)
    try:
        return _ingest(Path(source), case_dir, case_id, overrides, timer, check_patient, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _ingest(
    source: Path,
    case_dir: Path,
    case_id: str,
    overrides: Mapping[str, Path] | None,
    timer: Timer,
    check_patient: Callable[[StudyPatient | None], None] | None,
    scratch: Path,
) -> IngestRecord:
    with timer.stage("read study"):
        study = open_study(source, scratch)
        if check_patient is not None:
            check_patient(study.patient)
        mapping = identify(study.series, dict(overrides or {}))
        chosen = _chosen_series(study.series, mapping)
    with timer.stage("load series"):
        images = {seq: load_series(info) for seq, info in chosen.items()}
        warnings = [w for seq, info in chosen.items() for w in _series_warnings(seq, info, images[seq])]
    registered = _register(images, timer)
    with timer.stage("resample to BraTS"):
        volumes, mask = _to_brats(images, registered)
        check = qc.assess(volumes["t1"], mask, registered.brain_ml)
    _gate(check, volumes["t1"], mask, source, case_dir.parent / f"{case_id}_ingest_qc_failed.png")
    record = IngestRecord(
        id=case_id,
        case_dir=case_dir.resolve(),
        input=source.resolve(),
        kind=study.kind,
        sequences=mapping.sequences,
        skipped=mapping.skipped,
        patient=study.patient,
        study_date=study.patient.study_date if study.patient else None,
        warnings=warnings,
        transforms=_transform_names(),
        timings_s=_timings(timer),
        qc=check,
    )
    with timer.stage("write case"):
        _write_case(case_dir, record, volumes, mask, images["t1ce"], registered, chosen["t1ce"])
    record.timings_s = _timings(timer)
    write_json_atomic(case_dir / INGEST_FOLDER / RECORD_NAME, record.model_dump(mode="json"), indent=2)
    return record


def _gate(check: qc.QualityCheck, t1: np.ndarray, mask: np.ndarray, source: Path, figure: Path) -> None:
    """Stop a study that fails the quality gate, with its QC figure written beside the case folder."""
    if check.verdict == "pass":
        return
    qc.save_qc_figure(t1, mask, check, figure)
    raise UserError(f"{source}: the quality gate failed ({'; '.join(check.reasons)}); see {figure}", field="input")


def _timings(timer: Timer) -> dict[str, float]:
    return {name: seconds for name, seconds in timer.timings.items() if name in STAGES}


def _check_case_dir(case_dir: Path) -> None:
    """Refuse to replace a folder that holds anything but an earlier ingest's output."""
    if case_dir.is_file():
        raise UserError(f"{case_dir}: is a file; the case folder must be a new or empty folder", field="out")
    if case_dir.is_dir() and any(case_dir.iterdir()) and not (case_dir / INGEST_FOLDER / RECORD_NAME).is_file():
        raise UserError(f"{case_dir}: not empty and not an earlier ingest's case; choose a new folder", field="out")


def _chosen_series(series: list, mapping: SeriesMap) -> dict:
    by_source = {info.source: info for info in series}
    return {seq: by_source[choice.source] for seq, choice in mapping.sequences.items()}


def _series_warnings(seq: str, info, image: sitk.Image) -> list[str]:
    """Refuse a series registration cannot use (one slice, no signal); warn about thick slices."""
    size = image.GetSize()
    if min(size) < 2:
        raise UserError(f"{info.source}: {seq} is a single slice ({size}); a sequence needs a 3D volume", field=seq)
    voxels = sitk.GetArrayViewFromImage(image)
    if not np.isfinite(voxels).all() or voxels.min() == voxels.max():
        raise UserError(f"{info.source}: {seq} has no image in it (every voxel the same, or not a number)", field=seq)
    thickest = max(image.GetSpacing())
    if thickest > qc.THICK_SLICE_MM:
        return [f"{seq}: {thickest:.1f} mm slices ({info.source.name}); detail across slices is lost"]
    return []


def _register(images: dict[str, sitk.Image], timer: Timer) -> _Registered:
    with timer.stage("co-register"):
        reference = reference_grid(images["t1ce"])
        transforms = {seq: coregister(images[seq], reference) for seq in ("t1", "t2", "flair")}
        transforms["t1ce"] = sitk.Euler3DTransform()
    with timer.stage("skull strip"):
        t1 = sitk.Resample(images["t1"], reference, transforms["t1"], sitk.sitkLinear, 0.0, sitk.sitkFloat32)
        t1_ras, lps = ras_array(t1)
        mask = from_ras_array(skullstrip.brain_mask(t1_ras).astype(np.uint8), lps, t1)
        brain_ml = float(sitk.GetArrayViewFromImage(mask).sum()) * float(np.prod(mask.GetSpacing())) / 1000.0
    with timer.stage("register to template"):
        found = template_transform(sitk.Mask(t1, mask), template_image())
    return _Registered(series_transforms=transforms, brats_to_reference=found, mask_reference=mask, brain_ml=brain_ml)


def _to_brats(images: dict[str, sitk.Image], registered: _Registered) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Each sequence on the BraTS grid (one linear resample through composed transforms), zero outside the brain."""
    to_reference = registered.brats_to_reference
    mask = to_brats_grid(registered.mask_reference, to_reference) > 0.5
    volumes = {}
    for seq in SEQUENCES:
        # CompositeTransform([A, B]) maps x to A(B(x)): BraTS -> reference -> series.
        composed = sitk.CompositeTransform([registered.series_transforms[seq], to_reference])
        volume = to_brats_grid(images[seq], composed)
        volume[~mask] = 0
        volumes[seq] = np.clip(volume, 0, None).astype(np.float32)
    return volumes, mask


def _transform_names() -> dict[str, str]:
    names = {seq: f"{INGEST_FOLDER}/{seq}_to_t1ce.tfm" for seq in ("t1", "t2", "flair")}
    names["t1ce"] = f"{INGEST_FOLDER}/{TEMPLATE_TRANSFORM}"
    return names


def _write_case(
    case_dir: Path,
    record: IngestRecord,
    volumes: dict[str, np.ndarray],
    mask: np.ndarray,
    t1ce: sitk.Image,
    registered: _Registered,
    t1ce_series,
) -> None:
    with atomic_dir(case_dir) as built:
        for seq, volume in volumes.items():
            write_nifti(volume, BRATS_AFFINE, built / BRATS2020.filename(record.id, seq))
        folder = built / INGEST_FOLDER
        folder.mkdir()
        write_nifti(mask.astype(np.uint8), BRATS_AFFINE, folder / BRAIN_MASK)
        for seq in ("t1", "t2", "flair"):
            sitk.WriteTransform(registered.series_transforms[seq], str(folder / f"{seq}_to_t1ce.tfm"))
        sitk.WriteTransform(registered.brats_to_reference, str(folder / TEMPLATE_TRANSFORM))
        sitk.WriteImage(t1ce, str(folder / NATIVE_T1CE), useCompression=True)
        if isinstance(t1ce_series, DicomSeries):
            copy_series_files(t1ce_series, folder / T1CE_DICOM)
        qc.save_qc_figure(volumes["t1"], mask, record.qc, folder / QC_FIGURE)
        write_json_atomic(folder / RECORD_NAME, record.model_dump(mode="json"), indent=2)
