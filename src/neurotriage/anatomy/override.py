"""A clinician's corrected location: a side and atlas regions in place of what localisation found.

The corrected `Location` keeps the finding's own volumes and lesion count (a correction moves the
tumour, it does not resize it) and drops what was measured for the old place: eloquent-area
distances, the midline measurement, hemisphere fractions and VASARI features. Every named region
holds the tumour on the corrected side, so the cross-check and the referral read it as they read
a located tumour: the lobes share out the tumour's volume, and the eloquent areas, which lie within
lobes, share it out among themselves. Side words are taken as written and never mirrored: 'left' is
the patient's left.
"""

from __future__ import annotations

import re

from neurotriage.anatomy.atlas import MIDLINE_STRUCTURES
from neurotriage.anatomy.location import EloquentArea, Location, Region
from neurotriage.errors import UserError
from neurotriage.vocabulary import ELOQUENT, LOBES, area_name

HEMISPHERES = ("left", "right", "bilateral", "midline")
ATLAS_REGIONS = LOBES + ELOQUENT
# Words a region may be written with besides its readable name ('parietal' for the parietal lobe).
SUFFIXES = (" lobe", " cortex", " area", "'s area")


def check_override(hemisphere: str, regions: list[str]) -> tuple[str, list[str]]:
    """A structured override, checked: a hemisphere of HEMISPHERES and one or more atlas regions (each once)."""
    if hemisphere not in HEMISPHERES:
        raise UserError(
            f"location_hemisphere: must be one of {', '.join(HEMISPHERES)}, not {hemisphere!r}",
            field="location_hemisphere",
        )
    chosen = list(dict.fromkeys(r.strip() for r in regions if r.strip()))
    unknown = [r for r in chosen if r not in ATLAS_REGIONS]
    if unknown:
        raise UserError(f"location_regions: {unknown[0]!r} is not an atlas region", field="location_regions")
    if not chosen:
        message = "location_regions: choose at least one region of the corrected location"
        raise UserError(message, field="location_regions")
    return hemisphere, chosen


def describe_override(hemisphere: str, regions: list[str]) -> str:
    """E.g. 'left temporal lobe, Wernicke's area'."""
    return f"{hemisphere} {', '.join(area_name(r) for r in regions)}"


def _aliases() -> dict[str, str]:
    """Every way a region may be written, in lower case, to its code."""
    found: dict[str, str] = {}
    for code in ATLAS_REGIONS:
        for name in (code.replace("_", " "), area_name(code).lower()):
            found[name] = code
            for suffix in SUFFIXES:
                if name.endswith(suffix):
                    found.setdefault(name.removesuffix(suffix), code)
    return found


def parse_override_text(text: str) -> tuple[str, list[str]]:
    """A location written as text ('left temporal lobe', 'right frontal and Broca's area') as
    (hemisphere, regions); a UserError naming location_override when it names no side or an unknown region."""
    words = text.lower().replace("(clinician)", " ")
    sides = [side for side in HEMISPHERES if re.search(rf"\b{side}\b", words)]
    if {"left", "right"} <= set(sides):
        sides = ["bilateral"]
    if len(sides) != 1:
        message = f"location_override: {text.strip()!r} must name one side ({', '.join(HEMISPHERES)})"
        raise UserError(message, field="location_override")
    rest = re.sub(rf"\b({'|'.join(HEMISPHERES)}|the|sided)\b", " ", words)
    aliases = _aliases()
    regions = []
    for part in re.split(r",|;|/|\+|\band\b", rest):
        phrase = " ".join(part.replace("-", " ").split())
        if not phrase:
            continue
        if phrase not in aliases:
            raise UserError(f"location_override: {phrase!r} is not an atlas region", field="location_override")
        regions.append(aliases[phrase])
    return check_override(sides[0], regions)


def _sides(hemisphere: str, region: str) -> tuple[str, ...]:
    """The sides a region of the corrected location lies on."""
    if hemisphere == "midline" or (hemisphere == "bilateral" and region in MIDLINE_STRUCTURES):
        return ("midline",)
    return ("left", "right") if hemisphere == "bilateral" else (hemisphere,)


def _placed(whole: float, hemisphere: str, names: list[str], kind: str) -> list[Region]:
    """Regions of one kind on their sides, sharing the whole tumour's volume equally."""
    placed = [(name, side) for name in names for side in _sides(hemisphere, name)]
    share = 1 / len(placed) if placed else 0.0
    return [
        Region(name=name, side=side, ml=round(whole * share, 2), fraction_of_tumour=round(share, 3), kind=kind)
        for name, side in placed
    ]


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def override_location(location: Location, hemisphere: str, regions: list[str]) -> Location:
    """`location` with its side and regions replaced by a checked override (`check_override`); a location
    without tumour has nothing to move (UserError)."""
    if not location.has_tumour:
        raise UserError(
            "location_override: imaging found no tumour, so there is no location to correct", field="location_override"
        )
    whole = location.volumes_ml.whole_tumour
    lobes = [r for r in regions if r in LOBES]
    found = _placed(whole, hemisphere, lobes, "lobe") + _placed(
        whole, hemisphere, [r for r in regions if r not in LOBES], "area"
    )
    same_lobes = {r.name for r in location.involved_regions if r.name in LOBES} == set(lobes)
    primary = lobes[0] if lobes else regions[0]
    primary_sides = _sides(hemisphere, primary)
    return location.model_copy(
        update={
            "hemisphere": hemisphere if hemisphere != "midline" else None,
            "hemisphere_fractions": None,
            "primary_region": primary,
            "primary_region_side": primary_sides[0] if len(primary_sides) == 1 else None,
            "primary_region_shared_with": lobes[1:],
            "regions": found,
            "crosses_midline": hemisphere == "bilateral",
            "midline": None,
            # Whether the cortex is reached was measured for the old place; it holds only for the same lobes.
            "cortical_involvement": location.cortical_involvement if same_lobes else None,
            "eloquent": [
                EloquentArea(name=r.name, side=r.side, ml=r.ml, distance_mm=0.0) for r in found if r.kind == "area"
            ],
            "vasari": None,
            "summary": f"{_capital(describe_override(hemisphere, regions))} (clinician), {whole:.1f} ml whole tumour.",
        }
    )
