"""What a report is built from: one `ReportInput` made of the stages' own objects.

The report layer never calls the earlier stages; `diagnosis.record.report_input` gathers their results (the anatomy
stage's `Location`, the clinical stage's `CrossCheck` and `Recommendation`s, the diagnosis
stage's `Provenance`) and hands them over here. A missing part is shown as "not available",
never guessed.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

import numpy as np
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from neurotriage.anatomy.location import Location
from neurotriage.clinical.crosscheck import CrossCheck
from neurotriage.clinical.scoring import Recommendation
from neurotriage.diagnosis.provenance import Provenance
from neurotriage.ingest.native import NativeSegmentation
from neurotriage.report.hints import ReviewHint
from neurotriage.segmentation.uncertainty import UncertainTissue


class Patient(BaseModel):
    """The patient as shown on the report."""

    id: str
    name: str = ""
    sex: str | None = None
    birth_date: date | None = None
    language_dominance: Literal["left", "right"] = "left"
    mrn: str | None = None
    mrn_issuer: str | None = None
    # False for a patient created from a received study whose identity no clinician has checked yet.
    confirmed: bool = True

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, value: Any) -> Any:
        # Database ids are integers; the report treats them as text.
        return str(value) if isinstance(value, int) else value


class Symptom(BaseModel):
    """One presenting symptom: the project's slug, its name, SNOMED CT code and side."""

    code: str
    name: str = ""
    # The clinical knowledge base calls it snomed_code; both spellings are accepted.
    snomed: str | None = Field(default=None, validation_alias=AliasChoices("snomed", "snomed_code"))
    side: Literal["left", "right", "bilateral"] | None = None
    onset: str | None = None
    severity: str | None = None

    @field_validator("snomed", "onset", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int | date) else value


class Imaging(BaseModel):
    """The case's voxels: sequences (float), internal-label segmentation (0-3) and affine."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    case_id: str
    images: dict[str, np.ndarray]
    affine: np.ndarray
    seg: np.ndarray | None = None
    # The segmentation's uncertainty: normalised entropy x 255 (uint8, segmentation.uncertainty).
    uncertainty: np.ndarray | None = None
    # Label scheme the segmentation file is written in (neurotriage.imaging.naming.NAMINGS).
    naming: Literal["brats2020", "brats2023"] = "brats2023"
    # For a case ingested from a raw study: the segmentation on the study's own T1ce grid.
    native: NativeSegmentation | None = None

    @field_validator("affine")
    @classmethod
    def _affine_4x4(cls, value: np.ndarray) -> np.ndarray:
        if value.shape != (4, 4):
            raise ValueError(f"affine must be 4x4, got {value.shape}")
        return value

    @field_validator("images")
    @classmethod
    def _images_3d(cls, value: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not value:
            raise ValueError("at least one image is needed")
        shapes = {arr.shape for arr in value.values()}
        if len(shapes) != 1 or len(next(iter(shapes))) != 3:
            raise ValueError(f"images must be 3D and share one shape, got {sorted(shapes)}")
        return value

    @model_validator(mode="after")
    def _seg_on_the_image_grid(self) -> Imaging:
        shape = next(iter(self.images.values())).shape
        for name, volume in (("segmentation", self.seg), ("uncertainty", self.uncertainty)):
            if volume is not None and volume.shape != shape:
                raise ValueError(f"{name} shape {volume.shape} differs from the images' {shape}")
        return self


class ReportInput(BaseModel):
    """Everything one report shows."""

    patient: Patient
    symptoms: list[Symptom] = Field(default_factory=list)
    locate: Location | None = None
    crosscheck: CrossCheck | None = None
    referrals: list[Recommendation] = Field(default_factory=list)
    provenance: Provenance = Field(default_factory=Provenance)
    imaging: Imaging | None = None
    # Prompts for the reviewer measured on the case (report.hints), shown beside the finding.
    review_hints: list[ReviewHint] = Field(default_factory=list)
    # Uncertain tissue at each compartment, beside its volume (segmentation.uncertainty).
    uncertainty: UncertainTissue | None = None
    # The finding this report belongs to (allocated before the finding is stored).
    finding_key: str | None = None

    @property
    def has_tumour(self) -> bool:
        """True when the localisation, or failing that the segmentation, shows any tumour."""
        if self.locate is not None:
            return self.locate.has_tumour
        return self.imaging is not None and self.imaging.seg is not None and bool(self.imaging.seg.any())

    def to_json(self) -> dict[str, Any]:
        """The report's data as JSON-ready dicts (voxels left out; they go to NIfTI/PNG)."""
        data = self.model_dump(mode="json", exclude={"imaging"})
        data["case_id"] = self.imaging.case_id if self.imaging else None
        return data
