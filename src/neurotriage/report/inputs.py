"""What a report is built from: one validated `ReportInput`, made of plain data.

The report layer never calls the earlier stages; `diagnose` gathers their results and hands
them over here. The analysis pieces stay plain dicts with the keys each stage documents:

- `locate`: the localisation JSON (hemisphere, primary_region, regions [{name, side, ml,
  fraction_of_tumour}], crosses_midline, volumes_ml {whole_tumour, tumour_core, enhancing,
  necrosis, edema}, centroid_mm, n_components, touches_ventricles, cortical_involvement,
  eloquent [{name, side}], summary, vasari {...}).
- `crosscheck`: as `neurotriage.clinical.crosscheck.crosscheck` returns it: verdict, score,
  needs_review, summary, predicted_regions [{name, side}], and symptoms [{code, name, side,
  explained (true/false/null), reason, sources}].
- `referrals`: the ranked `recommendations` of `neurotriage.clinical.referral.recommend`:
  [{rank, score, doctor {name, specialty, wait_days}, hospital {name, city}, distance_km,
  reasons [str]}]; doctor and hospital may also be plain names.

Every key is optional: a missing one is shown as "not available", never guessed.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

import numpy as np
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from neurotriage import __version__


def plain(value: Any) -> Any:
    """Turn numpy scalars/arrays (and containers of them) into JSON-ready Python values."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value


class Patient(BaseModel):
    """The patient as shown on the report."""

    id: str
    name: str = ""
    sex: str | None = None
    birth_date: date | None = None
    language_dominance: Literal["left", "right"] = "left"

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


class InputFile(BaseModel):
    """One input file and its SHA-256."""

    path: str
    sha256: str


class Provenance(BaseModel):
    """Where a finding came from: software, model and input checksums."""

    software_version: str = __version__
    model_id: str | None = None
    model_sha256: str | None = None
    inputs: list[InputFile] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=lambda: datetime.now().astimezone())


class Imaging(BaseModel):
    """The case's voxels: sequences (float), internal-label segmentation (0-3) and affine."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    case_id: str
    images: dict[str, np.ndarray]
    affine: np.ndarray
    seg: np.ndarray | None = None
    # Label scheme the segmentation file is written in (neurotriage.imaging.naming.NAMINGS).
    naming: Literal["brats2020", "brats2023"] = "brats2023"

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
        if self.seg is not None and self.seg.shape != shape:
            raise ValueError(f"segmentation shape {self.seg.shape} differs from the images' {shape}")
        return self


class ReportInput(BaseModel):
    """Everything one report shows. Build it with `ReportInput.model_validate({...})`."""

    patient: Patient
    symptoms: list[Symptom] = Field(default_factory=list)
    locate: dict[str, Any] | None = None
    crosscheck: dict[str, Any] | None = None
    referrals: list[dict[str, Any]] = Field(default_factory=list)
    provenance: Provenance = Field(default_factory=Provenance)
    imaging: Imaging | None = None

    @field_validator("locate", "crosscheck", "referrals", mode="before")
    @classmethod
    def _plain(cls, value: Any) -> Any:
        return plain(value)

    @property
    def has_tumour(self) -> bool:
        """True when the localisation, or failing that the segmentation, shows any tumour."""
        volumes = (self.locate or {}).get("volumes_ml") or {}
        if "whole_tumour" in volumes:
            return float(volumes["whole_tumour"]) > 0
        return self.imaging is not None and self.imaging.seg is not None and bool(self.imaging.seg.any())

    def to_json(self) -> dict[str, Any]:
        """The report's data as JSON-ready dicts (voxels left out; they go to NIfTI/PNG)."""
        data = self.model_dump(mode="json", exclude={"imaging"})
        data["case_id"] = self.imaging.case_id if self.imaging else None
        return data
