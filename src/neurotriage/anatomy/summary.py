"""One readable sentence from a locate() result."""

from __future__ import annotations

from neurotriage.vocabulary import area_name

NO_TUMOUR = "No tumour found."
# Language areas are named for the usual left-dominant brain; on the right the same gyri are their
# homologues, eloquent only in a right-dominant patient (the clinical cross-check knows dominance).
LANGUAGE_AREAS = ("broca", "wernicke")


def _sided(entry: dict) -> str:
    homologue = " homologue" if entry["name"] in LANGUAGE_AREAS and entry["side"] == "right" else ""
    return f"{entry['side']} {area_name(entry['name'])}{homologue}"


def _eloquent_clause(eloquent: list[dict], margin_mm: float) -> str:
    involved = [_sided(e) for e in eloquent if e["involved"]]
    near = [_sided(e) for e in eloquent if not e["involved"]]
    parts = []
    if involved:
        parts.append("involves " + ", ".join(involved))
    if near:
        parts.append(f"within {margin_mm:g} mm of " + ", ".join(near))
    return "; ".join(parts) if parts else "no eloquent area involved"


def summary_sentence(result: dict, margin_mm: float) -> str:
    """E.g. 'Right frontal lobe, 24.1 ml whole tumour, does not cross the midline; no eloquent area involved.'"""
    if not result["tumour_found"]:
        return NO_TUMOUR
    primary = result["primary_region"]
    where = f"{result['primary_region_side']} {area_name(primary)}" if primary else "outside the atlas regions"
    where = where[0].upper() + where[1:]
    if result.get("primary_region_shared_with"):
        where += " at its junction with the " + " and the ".join(map(area_name, result["primary_region_shared_with"]))
    if result["hemisphere"] == "bilateral":
        where += " (bilateral)"
    parts = [where, f"{result['volumes_ml']['whole_tumour']:.1f} ml whole tumour"]
    if result["n_components"] > 1:
        parts.append(f"{result['n_components']} separate lesions")
    parts.append("crosses the midline" if result["crosses_midline"] else "does not cross the midline")
    return ", ".join(parts) + "; " + _eloquent_clause(result["eloquent"], margin_mm) + "."
