"""`analyse`: segment, locate and record provenance for one case. It touches no database.

Usable from a notebook: `analyse("BraTS-GLI-00001-000/")` returns an `Analysis` with the labels,
their uncertainty, the `Location` and the `Provenance`; `diagnosis.pipeline.diagnose` goes on to decide, report and
store it for a patient (`diagnosis.record`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict

from neurotriage.anatomy.locate import locate
from neurotriage.anatomy.location import Location
from neurotriage.diagnosis.provenance import ModelRef, Provenance, provenance
from neurotriage.diagnosis.stages import StageTimer
from neurotriage.imaging.io import CaseFiles, find_case, load_case
from neurotriage.imaging.naming import NAMINGS
from neurotriage.ingest.native import NativeSegmentation, is_ingested, native_segmentation
from neurotriage.segmentation.uncertainty import UncertainTissue, uncertain_tissue

if TYPE_CHECKING:  # torch and MONAI load only when a model is (start-up time)
    from neurotriage.segmentation.ensemble import Ensemble
    from neurotriage.segmentation.external import ExternalModel
    from neurotriage.segmentation.infer import SegmentationModel

    Model = SegmentationModel | ExternalModel | Ensemble


class Analysis(BaseModel):
    """One case's segmentation (internal labels on the case's grid), its uncertainty, location and provenance."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    case_id: str
    folder: Path
    naming: str
    images: dict[str, np.ndarray]
    affine: np.ndarray
    labels: np.ndarray
    # The normalised entropy x 255 (uint8) on the case's grid, and the uncertain tissue at each compartment.
    uncertainty: np.ndarray
    uncertain: UncertainTissue
    location: Location
    provenance: Provenance
    # For a case `ingest` made from a raw study: the segmentation on the study's own T1ce grid.
    native: NativeSegmentation | None = None

    @property
    def segmentation_name(self) -> str:
        """The segmentation's file name in the case's own naming, e.g. 'SYN_0000_seg.nii.gz'."""
        return NAMINGS[self.naming].filename(self.case_id, "seg")


def model_id(model: Model) -> str:
    """The model's recorded id, or its file name and architecture."""
    from neurotriage.segmentation.ensemble import model_name  # torch: imported only when a case is analysed

    return model_name(model)


def model_refs(model: Model) -> list[ModelRef]:
    """Every model that made the segmentation (an ensemble's members, in order), with its SHA-256."""
    from neurotriage.segmentation.ensemble import members_of  # torch: imported only when a case is analysed

    return [
        ModelRef(model_id=model_id(m), sha256=m.sha256, origin=getattr(m.config, "origin", None))
        for m in members_of(model)
    ]


def analyse(
    case: CaseFiles | Path | str,
    model: Model | Sequence[Path | str] | Path | str | None = None,
    timer: StageTimer | None = None,
) -> Analysis:
    """Segment (with the model's saved flip averaging and post-processing) and measure the uncertainty,
    locate, record provenance; several model names make an ensemble."""
    from neurotriage.segmentation.loader import load_models  # torch: imported only when a case is analysed

    files = case if isinstance(case, CaseFiles) else find_case(case)
    timer = timer or StageTimer(quiet=True)
    with timer.stage("load images"):
        loaded = load_case(files, with_seg=False)
    if model is None or isinstance(model, str | Path | Sequence):
        with timer.stage("load model"):
            model = load_models(model)
    with timer.stage("segment"):
        segmented = model.segment(loaded)
    with timer.stage("uncertainty"):
        uncertain = uncertain_tissue(segmented.uncertainty, segmented.labels, loaded.spacing)
    with timer.stage("locate"):
        location = locate(segmented.labels, loaded.affine)
    native = None
    if is_ingested(files.folder):
        with timer.stage("native space"):
            native = native_segmentation(segmented.labels, files.folder)
    with timer.stage("provenance"):
        origin = getattr(model.config, "origin", None)  # only a model trained elsewhere has one
        post = model.config.postprocess.to_dict()
        prov = provenance(
            files, model_id(model), model.sha256, post, model.config.tta, model_origin=origin, models=model_refs(model)
        )
    return Analysis(
        case_id=files.case_id,
        folder=files.folder.resolve(),
        naming=files.naming.name,
        images=loaded.images,
        affine=loaded.affine,
        labels=segmented.labels,
        uncertainty=segmented.uncertainty,
        uncertain=uncertain,
        location=location,
        provenance=prov,
        native=native,
    )
