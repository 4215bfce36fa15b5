"""A synthetic raw study as DICOM: each series of the raw writer as single-frame MR Image Storage files.

The pixels and geometry come from the same (plan, affine, image) series the NIfTI writer saves, so both forms
show one acquisition. Files go to <study>/dicom/<SeriesNumber>/IMnnnn.dcm, one per slice, explicit VR little
endian. The patient, dates and UIDs are drawn from a seeded generator (UIDs hash a drawn key), so the same seed
gives byte-identical files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid
from pydicom.valuerep import format_number_as_ds

from neurotriage.imaging.synth_series import SeriesPlan

DICOM_FOLDER = "dicom"
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])  # NIfTI world is RAS, DICOM patient coordinates are LPS
FAMILY_NAMES = ("ASHDOWN", "BRIGHTWELL", "CALDER", "DUNMORE", "ELSWORTH", "FAIRLEY", "GARROWAY", "HALLORAN")
GIVEN_NAMES = {"F": ("ALMA", "BERYL", "CORA", "DELIA"), "M": ("ALDOUS", "BASIL", "CYRUS", "DORIAN")}
FIELD_STRENGTHS = (1.5, 3.0)
# Siemens-style (SequenceName, SequenceVariant) per kind of series.
SEQUENCE_NAMES = {
    "flair": ("*tir2d1_16", "SK\\SP\\MP"),
    "t1": ("*se2d1", "SP\\OSP"),
    "t1ce": ("*se2d1", "SP\\OSP"),
    "t2": ("*tse2d1_15", "SK\\SP"),
    "mprage": ("*tfl3d1_16ns", "SK\\SP\\MP"),
    "localiser": ("*fl2d1", "SP\\OSP"),
}
LOCALISER_TAGS = {"RepetitionTime": 0.0086, "EchoTime": 0.004, "ScanningSequence": "GR", "MRAcquisitionType": "2D"}
PLAIN_IMAGE_TYPE = ["ORIGINAL", "PRIMARY", "M", "ND"]


@dataclass(frozen=True)
class StudyIdentity:
    """Who and when: the fictional patient, the study date, the scanner's field and the key all UIDs hash."""

    patient_id: str
    patient_name: str
    birth_date: str
    sex: str
    study_date: str
    accession: str
    field_strength: float
    uid_key: str

    def uid(self, *parts: object) -> str:
        """A UID that depends only on the study key and `parts`."""
        return str(generate_uid(entropy_srcs=[self.uid_key, *map(str, parts)]))

    def truth(self) -> dict:
        """What truth.json records of the study's DICOM identity."""
        return {
            "patient_id": self.patient_id,
            "patient_name": self.patient_name,
            "patient_birth_date": self.birth_date,
            "patient_sex": self.sex,
            "study_date": self.study_date,
            "study_instance_uid": self.uid("study"),
        }


def study_identity(rng: np.random.Generator) -> StudyIdentity:
    """Draw a fictional patient and study: name, ID, birth date (25 to 80 years before the study), sex."""
    sex = str(rng.choice(["F", "M"]))
    name = f"{rng.choice(FAMILY_NAMES)}^{rng.choice(GIVEN_NAMES[sex])}"
    study_day = np.datetime64("2024-01-01") + int(rng.integers(0, 730))
    birth_day = study_day - int(rng.integers(25 * 365, 80 * 365))
    return StudyIdentity(
        patient_id=f"NT{int(rng.integers(10**6, 10**7))}",
        patient_name=name,
        birth_date=_da(birth_day),
        sex=sex,
        study_date=_da(study_day),
        accession=f"A{int(rng.integers(10**7, 10**8))}",
        field_strength=float(rng.choice(FIELD_STRENGTHS)),
        uid_key=f"neurotriage-synth-{int(rng.integers(2**62))}",
    )


def _da(day: np.datetime64) -> str:
    return str(day).replace("-", "")


def series_folder(plan: SeriesPlan) -> str:
    """Where a series' files go, relative to the study folder: dicom/<SeriesNumber>."""
    return f"{DICOM_FOLDER}/{plan.number}"


def write_dicom_study(
    series: list[tuple[SeriesPlan, np.ndarray, np.ndarray]], identity: StudyIdentity, study_dir: Path
) -> None:
    """Write every series, the first (the localiser) setting the study time, under study_dir/dicom/."""
    study_time = _tm(series[0][0].sidecar["AcquisitionTime"])
    for plan, affine, image in series:
        write_dicom_series(plan, affine, image, identity, study_time, study_dir / series_folder(plan))


def write_dicom_series(
    plan: SeriesPlan, affine: np.ndarray, image: np.ndarray, identity: StudyIdentity, study_time: str, folder: Path
) -> None:
    """One file per slice k of `image`: pixel (row r, column c) is image[c, r, k], placed by `affine`."""
    folder.mkdir(parents=True)
    ds = _series_dataset(plan, affine, image, identity, study_time)
    lps = RAS_TO_LPS @ affine
    pixels = np.clip(image, 0, None).astype("<u2")
    for k in range(image.shape[2]):
        uid = identity.uid("instance", plan.number, k + 1)
        ds.file_meta.MediaStorageSOPInstanceUID = uid
        ds.SOPInstanceUID = uid
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = _ds(lps[:3, :3] @ [0.0, 0.0, k] + lps[:3, 3])
        ds.PixelData = np.ascontiguousarray(pixels[:, :, k].T).tobytes()
        dcmwrite(folder / f"IM{k + 1:04d}.dcm", ds, enforce_file_format=True)


def _series_dataset(
    plan: SeriesPlan, affine: np.ndarray, image: np.ndarray, identity: StudyIdentity, study_time: str
) -> Dataset:
    """Everything the slices of one series share; the per-slice tags are filled in by the caller."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = MRImageStorage
    _patient_and_study(ds, identity, study_time)
    _series_tags(ds, plan, identity)
    _acquisition_tags(ds, plan, identity)
    _geometry_tags(ds, plan, affine)
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = image.shape[1], image.shape[0]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "0", "1", "US"
    return ds


def _patient_and_study(ds: Dataset, identity: StudyIdentity, study_time: str) -> None:
    ds.PatientName = identity.patient_name
    ds.PatientID = identity.patient_id
    ds.PatientBirthDate = identity.birth_date
    ds.PatientSex = identity.sex
    ds.StudyInstanceUID = identity.uid("study")
    ds.StudyDate = identity.study_date
    ds.StudyTime = study_time
    ds.StudyID = "1"
    ds.AccessionNumber = identity.accession
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "MR HEAD"
    ds.Manufacturer = "NEUROTRIAGE SYNTHETIC"
    ds.ManufacturerModelName = "SYNTH"
    ds.FrameOfReferenceUID = identity.uid("frame of reference")
    ds.PositionReferenceIndicator = ""


def _series_tags(ds: Dataset, plan: SeriesPlan, identity: StudyIdentity) -> None:
    time = _tm(plan.sidecar["AcquisitionTime"])
    ds.Modality = "MR"
    ds.SeriesInstanceUID = identity.uid("series", plan.number)
    ds.SeriesNumber = plan.number
    ds.SeriesDescription = plan.description
    ds.ProtocolName = plan.description
    ds.BodyPartExamined = "HEAD"
    ds.PatientPosition = "HFS"
    ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = identity.study_date
    ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = time
    ds.AcquisitionNumber = 1
    ds.ImageType = plan.sidecar.get("ImageType", PLAIN_IMAGE_TYPE)


def _acquisition_tags(ds: Dataset, plan: SeriesPlan, identity: StudyIdentity) -> None:
    """Sequence, timing (ms in DICOM, s in the sidecar) and contrast agent, from the series' sidecar tags."""
    tags = LOCALISER_TAGS | plan.sidecar if plan.sequence == "localiser" else plan.sidecar
    three_d = tags["MRAcquisitionType"] == "3D"
    kind = "mprage" if three_d else plan.sequence
    ds.ScanningSequence = tags["ScanningSequence"]
    ds.SequenceName, ds.SequenceVariant = SEQUENCE_NAMES[kind]
    ds.MRAcquisitionType = tags["MRAcquisitionType"]
    ds.MagneticFieldStrength = format_number_as_ds(identity.field_strength)
    for key in ("RepetitionTime", "EchoTime", "InversionTime"):
        if key in tags:
            setattr(ds, key, format_number_as_ds(round(tags[key] * 1000, 3)))
    if "ContrastBolusAgent" in tags:
        ds.ContrastBolusAgent = tags["ContrastBolusAgent"]


def _geometry_tags(ds: Dataset, plan: SeriesPlan, affine: np.ndarray) -> None:
    """Orientation (row then column direction, LPS), spacings and thickness; rows run along the image's j axis."""
    lps = RAS_TO_LPS @ affine
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    ds.ImageOrientationPatient = _ds(np.concatenate([lps[:3, 0] / spacing[0], lps[:3, 1] / spacing[1]]))
    ds.PixelSpacing = _ds([spacing[1], spacing[0]])
    ds.SliceThickness = format_number_as_ds(float(plan.spacing[2]))
    ds.SpacingBetweenSlices = format_number_as_ds(round(float(spacing[2]), 6))


def _ds(values: np.ndarray | list[float]) -> list[str]:
    """Decimal strings of at most 16 characters; rounding to 1e-6 mm also turns -0.0 into 0."""
    return [format_number_as_ds(round(float(v), 6) + 0.0) for v in values]


def _tm(clock: str) -> str:
    """'HH:MM:SS.ffffff' (BIDS) -> 'HHMMSS.ffffff' (DICOM TM)."""
    return clock.replace(":", "")
