"""The VASARI features as a grouped table in plain language, with each feature's number and code."""

from __future__ import annotations

from typing import Any

from neurotriage.anatomy.vasari import ABSENT, CROSSES, PRESENT
from neurotriage.report.text import NOT_AVAILABLE
from neurotriage.vocabulary import area_name

# (group, [(feature, plain name)]) in the order a reader looks for them.
GROUPS = (
    ("Location", (("F1", "Lobe of the tumour's epicentre"), ("F2", "Side of the epicentre"))),
    (
        "Composition (share of the whole tumour)",
        (
            ("F5", "Enhancing tumour"),
            ("F6", "Non-enhancing tumour (BraTS label 1)"),
            ("F7", "Necrosis (BraTS label 1, shared with F6)"),
            ("F14", "Oedema"),
        ),
    ),
    (
        "Spread",
        (
            ("F19", "Reaches the ventricle wall (ependymal)"),
            ("F20", "Involves the cortex"),
            ("F21", "Invades deep white matter"),
            ("F22", "Non-enhancing tumour crosses the midline"),
            ("F23", "Enhancing tumour crosses the midline"),
        ),
    ),
    ("Multifocality", (("F24", "Satellite lesions"),)),
)
PROPORTION_BANDS = {2: "none", 3: "up to 5 %", 4: "6-33 %", 5: "34-67 %", 6: "68-95 %", 7: "over 95 %", 8: "all"}


def _plain(feature: str, entry: dict[str, Any]) -> str:
    """What one feature says, in words."""
    code = entry.get("code")
    if code is None:
        return NOT_AVAILABLE
    if "percent" in entry:
        return f"{entry['percent']:.1f} % ({PROPORTION_BANDS.get(code, code)})"
    if feature in ("F1", "F2"):
        return area_name(str(entry.get("value")))
    if feature in ("F22", "F23"):
        return "yes" if code == CROSSES else "no"
    answer = {PRESENT: "yes", ABSENT: "no"}.get(code, str(code))
    if entry.get("structures"):
        answer += ": " + ", ".join(map(area_name, entry["structures"]))
    if entry.get("count"):
        answer += f" ({entry['count']})"
    if feature == "F20" and "ml" in entry:
        answer += f" ({entry['ml']:.1f} ml of core in cortex)"
    return answer


def vasari_groups(vasari: dict[str, Any]) -> list[dict[str, Any]]:
    """Grouped rows (feature, plain name, value in words, VASARI code) of the features present."""
    groups = []
    for title, features in GROUPS:
        rows = [
            {"feature": f, "name": name, "value": _plain(f, vasari[f]), "code": vasari[f].get("code")}
            for f, name in features
            if isinstance(vasari.get(f), dict)
        ]
        if rows:
            groups.append({"title": title, "rows": rows})
    return groups
