"""A tumour label map on a DICOM series' own grid as a DICOM Segmentation (highdicom) that references that series.

One BINARY segment per described label, numbered 1, 2, ... in the order of the label values, coded from the
DICOM segmentation value sets (CID 7150 category, CID 7151 type) and coloured as the project's figures colour
them. Slices without tumour have no frames. A label map without any tumour still describes every segment and
writes their empty frames, so a viewer shows an empty segmentation rather than nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from neurotriage import __version__
from neurotriage.errors import UserError
from neurotriage.files import atomic_path
from neurotriage.imaging.labels import EDEMA, ENHANCING, LABEL_COLOURS, LEGEND_NAMES, NECROTIC_CORE, rgb
from neurotriage.ingest.dicom_volume import DicomVolume

# Both are DICOM long strings (64 characters at most): the series says what it is, the content what it is for.
SERIES_DESCRIPTION = "neurotriage tumour segmentation (not a medical device)"
CONTENT_DESCRIPTION = "research and decision support, not a medical device"
SERIES_NUMBER = 900
# Internal label -> segmented property type. NCIt's Enhancing Lesion is the one DICOM lists for enhancing
# tumour: SNOMED CT has no such concept in CID 7151.
PROPERTY_TYPES = {
    NECROTIC_CORE: codes.cid7151.Necrosis,
    EDEMA: codes.cid7151.Edema,
    ENHANCING: codes.cid7151.EnhancingLesion,
}
# Patient and study tags that DICOM requires present (type 2) and highdicom copies from the source unchecked.
_COPIED_TYPE_2 = (
    "PatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyID",
    "StudyDate",
    "StudyTime",
)
# Software has no serial number, but the equipment module of a SEG requires one.
DEVICE_SERIAL_NUMBER = "0"


def write_dicom_seg(
    labels: np.ndarray,
    volume: DicomVolume,
    out_path: Path,
    *,
    label_names: Mapping[int, str] = LEGEND_NAMES,
    series_number: int = SERIES_NUMBER,
) -> Path:
    """Write `labels` (internal labels, (z, y, x) on `volume.image`'s grid) as a DICOM SEG of the volume's source.

    Each label value in `label_names` becomes one segment named by it; `labels` may hold no other non-zero value.
    """
    segment_map = _segment_map(labels, volume, label_names)
    sources, pixel_array = _source_images(volume, segment_map)
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=pixel_array,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=_descriptions(label_names),
        series_instance_uid=hd.UID(),
        series_number=series_number,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="neurotriage",
        manufacturer_model_name="neurotriage",
        software_versions=__version__,
        device_serial_number=DEVICE_SERIAL_NUMBER,
        series_description=SERIES_DESCRIPTION,
        content_description=CONTENT_DESCRIPTION,
        omit_empty_frames=bool(segment_map.any()),  # highdicom needs a frame: an empty map keeps its empty frames
    )
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        seg.save_as(tmp, enforce_file_format=True)
    return out_path


def _segment_map(labels: np.ndarray, volume: DicomVolume, label_names: Mapping[int, str]) -> np.ndarray:
    """`labels` with each described label value replaced by its segment number."""
    expected = volume.image.GetSize()[::-1]
    if labels.shape != expected:
        raise ValueError(f"labels of shape {labels.shape} are not on the volume's grid {expected}")
    unknown = sorted(set(np.unique(labels).tolist()) - {0, *label_names})
    if unknown:
        raise ValueError(f"label values {unknown} have no segment name")
    segment_map = np.zeros(labels.shape, np.uint8)
    for number, label in enumerate(sorted(label_names), start=1):
        segment_map[labels == label] = number
    return segment_map


def _descriptions(label_names: Mapping[int, str]) -> list[hd.seg.SegmentDescription]:
    missing = sorted(set(label_names) - set(PROPERTY_TYPES))
    if missing:
        raise ValueError(f"labels {missing} have no segmented property type")
    algorithm = hd.AlgorithmIdentificationSequence(
        name="neurotriage", family=codes.cid7162.ArtificialIntelligence, version=__version__
    )
    return [
        hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=label_names[label],
            segmented_property_category=codes.cid7150.MorphologicallyAbnormalStructure,
            segmented_property_type=PROPERTY_TYPES[label],
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
            anatomic_regions=[codes.cid7151.Brain],
            display_color=hd.color.CIELabColor.from_rgb(*rgb(LABEL_COLOURS[label])),
        )
        for number, label in enumerate(sorted(label_names), start=1)
    ]


def _source_images(volume: DicomVolume, segment_map: np.ndarray) -> tuple[list[Dataset], np.ndarray]:
    """The source datasets (headers only) and the segment map in their order: file by file, or frame by frame."""
    paths = list(dict.fromkeys(source.path for source in volume.frames))
    if all(source.frame is None for source in volume.frames):
        return [source_header(path) for path in paths], segment_map
    if len(paths) != 1:
        raise UserError(
            f"{paths[0].parent}: the series spreads over {len(paths)} files of which some are multi-frame; "
            "a DICOM SEG can reference single-frame images or one multi-frame image",
            field="input",
        )
    by_frame = np.argsort([source.frame for source in volume.frames])
    return [source_header(paths[0])], segment_map[by_frame]


def source_header(path: Path) -> Dataset:
    """A source's header, with the patient and study tags a SEG copies present (empty when the source lacks them)."""
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    for keyword in _COPIED_TYPE_2:
        if keyword not in ds:
            setattr(ds, keyword, "")
    return ds
