"""The localisation JSON (`neurotriage locate --json`) as the clinical side reads it.

Only the keys the cross-check and referral use are validated; everything else is kept as given.
A malformed document is a user error naming the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from neurotriage.errors import UserError

Side = Literal["left", "right", "midline"]


class _RegionIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    side: Side
    ml: float = Field(ge=0)
    fraction_of_tumour: float = Field(ge=0)


class _EloquentIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    side: Side


class _VolumesIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    whole_tumour: float = Field(ge=0)
    enhancing: float = Field(default=0.0, ge=0)


class _LocateIn(BaseModel):
    model_config = ConfigDict(extra="allow")
    hemisphere: str | None = None
    primary_region: str | None = None
    regions: list[_RegionIn]
    volumes_ml: _VolumesIn
    eloquent: list[_EloquentIn] = []
    cortical_involvement: bool | None = None


@dataclass(frozen=True)
class Hit:
    """A region the tumour involves (or, for eloquent areas, comes within 5 mm of)."""

    name: str
    side: str
    fraction: float = field(default=0.0, compare=False)


@dataclass(frozen=True)
class Location:
    """What the clinical side needs from one localisation result."""

    whole_tumour_ml: float
    enhancing_ml: float
    hemisphere: str | None
    primary_region: str | None
    regions: tuple[Hit, ...]
    eloquent: tuple[Hit, ...]
    cortical_involvement: bool | None

    @property
    def has_tumour(self) -> bool:
        """False for a healthy scan (no whole-tumour volume)."""
        return self.whole_tumour_ml > 0

    def summary(self) -> str:
        """One phrase such as 'right frontal_lobe' or 'no tumour found'."""
        if not self.has_tumour:
            return "no tumour found"
        return " ".join(p for p in (self.hemisphere, self.primary_region) if p) or "tumour of unknown site"


def _field_path(error: dict[str, Any]) -> str:
    return ".".join(str(part) for part in error["loc"]) or "document"


def parse_location(data: Any, source: str = "locate JSON") -> Location:
    """Validate a localisation document; a malformed one raises UserError naming the field."""
    try:
        doc = _LocateIn.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise UserError(f"{source}: field {_field_path(first)}: {first['msg']}") from None
    return Location(
        whole_tumour_ml=doc.volumes_ml.whole_tumour,
        enhancing_ml=doc.volumes_ml.enhancing,
        hemisphere=doc.hemisphere,
        primary_region=doc.primary_region,
        regions=tuple(Hit(r.name, r.side, r.fraction_of_tumour) for r in doc.regions if r.ml > 0),
        eloquent=tuple(Hit(e.name, e.side) for e in doc.eloquent),
        cortical_involvement=doc.cortical_involvement,
    )


def read_locate_file(path: Path) -> dict[str, Any]:
    """Read a localisation JSON file as a plain dict (validated by `parse_location` later)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None
    parse_location(data, str(path))
    return data
