"""`Provenance`: what makes a finding traceable to its software, model, settings and inputs."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, Field

from neurotriage import __version__
from neurotriage.files import sha256_file
from neurotriage.imaging.io import CaseFiles


class InputFile(BaseModel):
    """One input file and its SHA-256."""

    path: str
    sha256: str


class ModelRef(BaseModel):
    """One model that made a segmentation: its id, its weights' SHA-256, and where a user-supplied one came from."""

    model_id: str
    sha256: str | None = None
    origin: str | None = None


class Provenance(BaseModel):
    """Software version, model id and SHA-256, flip averaging, post-processing, every input's SHA-256."""

    software_version: str = __version__
    # An ensemble's id and SHA-256 are of all its members (segmentation.ensemble); `models` names each.
    model_id: str | None = None
    model_sha256: str | None = None
    models: list[ModelRef] = Field(default_factory=list)
    # A model trained elsewhere that the user supplied: 'monai-bundle:/its/folder' or 'nnunet:/its/folder'.
    model_origin: str | None = None
    tta: bool | None = None
    postprocess: dict[str, Any] | None = None
    inputs: list[InputFile] = Field(default_factory=list)
    # A case `ingest` made: the raw study it came from, and any patient mismatch the user accepted.
    raw_study: str | None = None
    # The raw study's DICOM StudyDate, which dates the study in the database where it has none.
    raw_study_date: date | None = None
    accepted_patient_mismatch: list[str] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=lambda: datetime.now().astimezone())


def provenance(
    files: CaseFiles,
    model_id: str,
    model_sha256: str,
    postprocess: dict,
    tta: bool,
    model_origin: str | None = None,
    models: list[ModelRef] | None = None,
) -> Provenance:
    """The provenance of a segmentation of `files`, hashing each input once."""
    inputs = [InputFile(path=str(p.resolve()), sha256=sha256_file(p)) for p in files.images.values()]
    return Provenance(
        model_id=model_id,
        model_sha256=model_sha256,
        models=models or [],
        model_origin=model_origin,
        tta=tta,
        postprocess=postprocess,
        inputs=inputs,
    )
