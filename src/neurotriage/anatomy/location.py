"""`Location`: what the anatomy stage says about where a tumour lies (the `locate --json` document).

Every later stage (cross-check, referral, report, database) takes this object as it is. A document
read back from a file or the database for a decision is validated here (`parse_location`), and a
malformed one is a user error naming the field. `source` (the label map file) is left out of the
JSON when there is none, as before the document was typed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, ValidationError, model_serializer

from neurotriage import NOTICE
from neurotriage.errors import UserError
from neurotriage.vocabulary import area_name

Side = Literal["left", "right", "midline"]


class Region(BaseModel):
    """A lobe, deep structure or eloquent area that holds part of the tumour, on one side."""

    model_config = ConfigDict(frozen=True)

    name: str
    side: Side
    ml: float = Field(ge=0)
    kind: Literal["lobe", "area"] = "lobe"
    fraction_of_tumour: float = Field(default=0.0, ge=0)


class EloquentArea(BaseModel):
    """An eloquent area the tumour involves or comes within the margin of, on one side."""

    model_config = ConfigDict(frozen=True)

    name: str
    side: Side
    involved: bool = True
    ml: float = Field(default=0.0, ge=0)
    distance_mm: float | None = None


class Volumes(BaseModel):
    """Label volumes in ml."""

    whole_tumour: float = Field(ge=0)
    tumour_core: float = Field(default=0.0, ge=0)
    enhancing: float = Field(default=0.0, ge=0)
    necrosis: float = Field(default=0.0, ge=0)
    edema: float = Field(default=0.0, ge=0)


class Midline(BaseModel):
    """The volumes beyond the midline band on each side that decided `crosses_midline`."""

    x_mm: float
    band_mm: float
    threshold_ml: float
    left_ml: float
    right_ml: float


class Location(BaseModel):
    """Where a tumour lies: side, lobes, midline, volumes, eloquent areas, VASARI features, one sentence."""

    source: str | None = None
    tumour_found: bool | None = None
    hemisphere: Literal["left", "right", "bilateral"] | None = None
    hemisphere_fractions: dict[Literal["left", "right"], float] | None = None
    primary_region: str | None = None
    primary_region_side: Side | None = None
    primary_region_shared_with: list[str] = Field(default_factory=list)
    regions: list[Region]
    crosses_midline: bool = False
    midline: Midline | None = None
    volumes_ml: Volumes
    centroid_mm: list[float] | None = None
    centroid_mni_mm: list[float] | None = None
    n_components: int = Field(default=0, ge=0)
    touches_ventricles: bool = False
    cortical_involvement: bool | None = None
    eloquent: list[EloquentArea] = Field(default_factory=list)
    vasari: dict[str, Any] | None = None
    summary: str = ""
    notice: str = NOTICE

    @model_serializer(mode="wrap")
    def _without_unknown_source(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        if data.get("source") is None:
            data.pop("source", None)
        return data

    @property
    def has_tumour(self) -> bool:
        """False for a healthy scan (no whole-tumour volume)."""
        return self.volumes_ml.whole_tumour > 0

    @property
    def involved_regions(self) -> list[Region]:
        """Regions holding some of the tumour."""
        return [r for r in self.regions if r.ml > 0]

    def site(self) -> str:
        """A short phrase such as 'right frontal lobe', or 'no tumour found'."""
        if not self.has_tumour:
            return "no tumour found"
        region = area_name(self.primary_region) if self.primary_region else None
        return " ".join(p for p in (self.hemisphere, region) if p) or "tumour of unknown site"


def field_path(error: dict[str, Any]) -> str:
    """The dotted path of a pydantic error's location, e.g. 'regions.0.side'."""
    return ".".join(str(part) for part in error["loc"]) or "document"


def parse_location(data: Any, source: str = "locate JSON") -> Location:
    """Validate a localisation document; a malformed one raises UserError naming the field."""
    try:
        return Location.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = field_path(first)
        raise UserError(f"{source}: field {path}: {first['msg']}", field=path) from None


def read_location_file(path: Path) -> Location:
    """Read and validate a localisation JSON file (`neurotriage locate --json` output)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: no such file", field="locate") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc})", field="locate") from None
    return parse_location(data, str(path))
