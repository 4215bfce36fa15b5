"""Cross-check of reported symptoms against where imaging located the tumour.

A pure function of plain data (the patient's symptoms, language dominance and the localisation
JSON), so it is testable without a database. The imaging location is the confirmed location; the
verdict annotates it, and any disagreement is flagged for clinician review, never hidden.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from neurotriage.clinical.knowledge import Rule, SymptomDef, default_knowledge
from neurotriage.clinical.location import Hit, Location, parse_location
from neurotriage.errors import UserError

CONCORDANT = "concordant"
PARTIAL = "partially concordant"
DISCORDANT = "discordant"
NON_LOCALISING = "non-localising symptoms only"
NO_TUMOUR = "no tumour found despite focal symptoms"
VERDICTS = (CONCORDANT, PARTIAL, DISCORDANT, NON_LOCALISING, NO_TUMOUR)
REVIEW = frozenset({PARTIAL, DISCORDANT, NO_TUMOUR})

# A tumour within 5 mm of an area (the locate `eloquent` list) explains a deficit less surely
# than one inside it: oedema and mass effect often, but not always, reach it.
STRENGTH = {"involved": 1.0, "adjacent": 0.75}
OTHER_SIDE = {"left": "right", "right": "left"}


@dataclass(frozen=True)
class ReportedSymptom:
    """A symptom as the patient reported it."""

    code: str
    side: str | None = None
    onset: str | None = None
    severity: str | None = None


@dataclass(frozen=True)
class Expectation:
    """A region a symptom points to; `sides` None means either side."""

    region: str
    sides: frozenset[str] | None
    rule: Rule

    def accepts(self, hit: Hit) -> bool:
        """Whether a located region satisfies this expectation (midline structures fit any side)."""
        return hit.name == self.region and (self.sides is None or hit.side in self.sides or hit.side == "midline")

    def describe(self) -> str:
        """E.g. 'right primary_motor' or 'cerebellum (either side)'."""
        if self.sides is None:
            return f"{self.region} (either side)"
        return " or ".join(f"{side} {self.region}" for side in sorted(self.sides))


def expected_sides(laterality: str, symptom_side: str | None, dominance: str) -> frozenset[str] | None:
    """Hemisphere(s) a rule points to, or None when any side fits (or the side is unknown)."""
    if laterality == "dominant":
        return frozenset({dominance})
    if laterality == "non_dominant":
        return frozenset({OTHER_SIDE[dominance]})
    if laterality not in ("contralateral", "ipsilateral") or symptom_side is None:
        return None
    body_sides = {"left", "right"} if symptom_side == "bilateral" else {symptom_side}
    if laterality == "ipsilateral":
        return frozenset(body_sides)
    return frozenset(OTHER_SIDE[s] for s in body_sides)


def expectations(definition: SymptomDef, side: str | None, dominance: str) -> list[Expectation]:
    """The regions a reported symptom points to, with sides resolved for this patient."""
    return [
        Expectation(rule.region, expected_sides(rule.laterality, side, dominance), rule)
        for rule in definition.rules
        if rule.region is not None and rule.laterality != "non_localising"
    ]


def _describe_symptom(definition: SymptomDef, side: str | None) -> str:
    if side in ("left", "right"):
        return f"{side}-sided {definition.name.lower()}"
    if side == "bilateral":
        return f"bilateral {definition.name.lower()}"
    return definition.name.lower()


def _or_list(items: Sequence[str]) -> str:
    """'a', 'a or b', 'a, b or c'."""
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


def _hits(hits: Sequence[Hit]) -> list[dict[str, str]]:
    return [{"name": h.name, "side": h.side} for h in hits]


def _match(expected: list[Expectation], hits: Sequence[Hit]) -> tuple[list[Hit], list[Expectation]]:
    """Hits satisfying any expectation, and the expectations they satisfied."""
    found = [(h, e) for h in hits for e in expected if e.accepts(h)]
    return list(dict.fromkeys(h for h, _ in found)), list(dict.fromkeys(e for _, e in found))


def _wrong_side(expected: list[Expectation], hits: Sequence[Hit]) -> list[Hit]:
    """Hits in an expected region but on the other side."""
    names = {e.region for e in expected}
    return list(dict.fromkeys(h for h in hits if h.name in names and not any(e.accepts(h) for e in expected)))


def _outcome(
    explained: bool | None, match: str, regions: Sequence[Hit], reason: str, sources: Iterable[str] = ()
) -> dict[str, Any]:
    """The verdict on one symptom, in the shape every symptom entry shares."""
    return {
        "explained": explained,
        "match": match,
        "regions": _hits(regions),
        "sources": sorted(set(sources)),
        "reason": reason,
    }


def _assess_localising(definition: SymptomDef, side: str | None, dominance: str, location: Location) -> dict[str, Any]:
    """Explained or not, and why, for a symptom that points to regions."""
    expected = expectations(definition, side, dominance)
    wanted = _or_list([e.describe() for e in expected])
    what = _describe_symptom(definition, side)
    if not location.has_tumour:
        return _outcome(False, "no_tumour", [], f"{what} points to {wanted}, but imaging found no tumour")
    deep = definition.needs_cortex and location.cortical_involvement is False
    for how, hits in (("involved", () if deep else location.regions), ("adjacent", location.eloquent)):
        matched, used = _match(expected, hits)
        if matched:
            where = ", ".join(f"{h.side} {h.name}" for h in matched)
            verb = "involves" if how == "involved" else "lies within 5 mm of"
            rules = ", ".join(sorted({e.rule.laterality for e in used}))
            reason = f"{what} is explained: the tumour {verb} {where} ({rules} rule)"
            return _outcome(True, how, matched, reason, (e.rule.source for e in used))
    wrong = _wrong_side(expected, location.regions + location.eloquent)
    if wrong:
        where = ", ".join(f"{h.name} on the {h.side}" for h in wrong)
        return _outcome(False, "wrong_side", wrong, f"{what} points to {wanted}, but the tumour involves {where}")
    found = ", ".join(f"{h.side} {h.name}" for h in location.regions) or "no atlas region"
    if deep:
        found += ", without reaching the cortex"
    return _outcome(False, "none", [], f"{what} points to {wanted}; the tumour involves {found}")


def assess(symptom: ReportedSymptom, definition: SymptomDef, dominance: str, location: Location) -> dict[str, Any]:
    """The cross-check of one reported symptom against the located tumour."""
    expected = expectations(definition, symptom.side, dominance)
    entry = {
        "code": symptom.code,
        "name": definition.name,
        "snomed_code": definition.snomed,
        "side": symptom.side,
        "onset": symptom.onset,
        "severity": symptom.severity,
        "localising": definition.localising,
        "expected": [{"region": e.region, "sides": sorted(e.sides or ("either",))} for e in expected],
    }
    if not definition.localising:
        reason = f"{definition.name.lower()} does not localise (e.g. raised intracranial pressure); not scored"
        return entry | _outcome(None, "non_localising", [], reason, (r.source for r in definition.rules))
    return entry | _assess_localising(definition, symptom.side, dominance, location)


def predicted_regions(
    symptoms: Sequence[ReportedSymptom], dominance: str, knowledge: Mapping[str, SymptomDef]
) -> list[dict[str, Any]]:
    """Regions the symptoms point to overall: name, side (left/right/either) and which symptoms."""
    found: dict[tuple[str, str], list[str]] = {}
    for symptom in symptoms:
        for expectation in expectations(knowledge[symptom.code], symptom.side, dominance):
            for side in sorted(expectation.sides or ("either",)):
                codes = found.setdefault((expectation.region, side), [])
                if symptom.code not in codes:
                    codes.append(symptom.code)
    return [{"name": name, "side": side, "symptoms": codes} for (name, side), codes in sorted(found.items())]


def _verdict(assessed: list[dict[str, Any]], location: Location) -> tuple[str, float | None]:
    """The verdict and concordance score (mean strength over localising symptoms)."""
    focal = [a for a in assessed if a["localising"]]
    if not focal:
        return NON_LOCALISING, None
    if not location.has_tumour:
        return NO_TUMOUR, 0.0
    score = round(sum(STRENGTH.get(a["match"], 0.0) for a in focal) / len(focal), 3)
    explained = sum(1 for a in focal if a["explained"])
    if explained == len(focal):
        return CONCORDANT, score
    return (DISCORDANT if explained == 0 else PARTIAL), score


def _summary(verdict: str, score: float | None, location: Location) -> str:
    text = f"Imaging: {location.summary()}. Symptoms: {verdict}"
    if score is not None:
        text += f" (concordance {score:.2f})"
    if verdict in REVIEW:
        text += ". Flagged for clinician review"
    return text + "."


def check_inputs(symptoms: Sequence[ReportedSymptom], dominance: str, knowledge: Mapping[str, SymptomDef]) -> None:
    """Reject unknown symptom codes and dominance values with a user error."""
    if dominance not in OTHER_SIDE:
        raise UserError(f"language dominance {dominance!r} must be left or right")
    for symptom in symptoms:
        if symptom.code not in knowledge:
            raise UserError(f"unknown symptom code {symptom.code!r}")


def crosscheck(
    symptoms: Sequence[ReportedSymptom],
    dominance: str,
    locate: Mapping[str, Any],
    knowledge: Mapping[str, SymptomDef] | None = None,
) -> dict[str, Any]:
    """Cross-check symptoms against a localisation result; a JSON-ready dict with the verdict."""
    knowledge = default_knowledge() if knowledge is None else knowledge
    check_inputs(symptoms, dominance, knowledge)
    location = parse_location(locate)
    assessed = [assess(s, knowledge[s.code], dominance, location) for s in symptoms]
    verdict, score = _verdict(assessed, location)
    return {
        "verdict": verdict,
        "score": score,
        "needs_review": verdict in REVIEW,
        "summary": _summary(verdict, score, location),
        "language_dominance": dominance,
        "confirmed_location": {
            "source": "imaging",
            "summary": location.summary(),
            "hemisphere": location.hemisphere if location.has_tumour else None,
            "primary_region": location.primary_region if location.has_tumour else None,
            "regions": _hits(location.regions),
            "verdict": verdict,
        },
        "symptoms": assessed,
        "predicted_regions": predicted_regions(symptoms, dominance, knowledge),
    }
