"""Cross-check of reported symptoms against where imaging located the tumour.

A pure function of the patient's symptoms, language dominance and the anatomy stage's `Location`,
so it is testable without a database; it returns a `CrossCheck`. The imaging location is the confirmed location; the
verdict annotates it, and any disagreement is flagged for clinician review, never hidden.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

from neurotriage.anatomy.location import EloquentArea, Location, Region
from neurotriage.clinical.knowledge import Rule, SymptomDef, default_knowledge
from neurotriage.errors import UserError
from neurotriage.vocabulary import area_name

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

Hit = Region | EloquentArea
Verdict = Literal[
    "concordant",
    "partially concordant",
    "discordant",
    "non-localising symptoms only",
    "no tumour found despite focal symptoms",
]


class SiteRef(BaseModel):
    """A region on one side."""

    name: str
    side: str


class ExpectedRegion(BaseModel):
    """A region a symptom points to, with the sides that fit ('either' for any)."""

    region: str
    sides: list[str]


class SymptomCheck(BaseModel):
    """The cross-check of one reported symptom: explained or not (None: does not localise), and why."""

    code: str
    name: str = ""
    snomed_code: str | None = None
    side: Literal["left", "right", "bilateral"] | None = None
    onset: str | None = None
    severity: str | None = None
    localising: bool = True
    expected: list[ExpectedRegion] = Field(default_factory=list)
    explained: bool | None = None
    match: Literal["involved", "adjacent", "wrong_side", "none", "no_tumour", "non_localising"] = "none"
    regions: list[SiteRef] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)
    reason: str = ""


class PredictedRegion(BaseModel):
    """A region (and side, or 'either') the symptoms point to, with the symptoms that do."""

    name: str
    side: str
    symptoms: list[str]


class ConfirmedLocation(BaseModel):
    """The imaging location, which stays the confirmed location, annotated with the verdict."""

    source: str = "imaging"
    summary: str
    hemisphere: str | None = None
    primary_region: str | None = None
    regions: list[SiteRef] = Field(default_factory=list)
    verdict: Verdict


class CrossCheck(BaseModel):
    """The verdict on all reported symptoms against one location, with a reason per symptom."""

    verdict: Verdict
    score: float | None = None
    needs_review: bool
    summary: str = ""
    language_dominance: Literal["left", "right"] | None = None
    confirmed_location: ConfirmedLocation | None = None
    symptoms: list[SymptomCheck] = Field(default_factory=list)
    predicted_regions: list[PredictedRegion] = Field(default_factory=list)


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
        """E.g. 'right primary motor cortex' or 'cerebellum (either side)'."""
        if self.sides is None:
            return f"{area_name(self.region)} (either side)"
        return " or ".join(f"{side} {area_name(self.region)}" for side in sorted(self.sides))


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


def _sites(hits: Iterable[Hit]) -> list[SiteRef]:
    """Each (name, side) once, in order; a region and an eloquent area of one name are one site."""
    return [SiteRef(name=n, side=s) for n, s in dict.fromkeys((h.name, h.side) for h in hits)]


def _match(expected: list[Expectation], hits: Sequence[Hit]) -> tuple[list[SiteRef], list[Expectation]]:
    """Sites satisfying any expectation, and the expectations they satisfied."""
    found = [(h, e) for h in hits for e in expected if e.accepts(h)]
    return _sites(h for h, _ in found), list(dict.fromkeys(e for _, e in found))


def _wrong_side(expected: list[Expectation], hits: Sequence[Hit]) -> list[SiteRef]:
    """Sites in an expected region but on the other side."""
    names = {e.region for e in expected}
    return _sites(h for h in hits if h.name in names and not any(e.accepts(h) for e in expected))


def _outcome(
    explained: bool | None, match: str, regions: Sequence[SiteRef], reason: str, sources: Iterable[str] = ()
) -> dict[str, object]:
    """The verdict fields of one symptom's check."""
    return {
        "explained": explained,
        "match": match,
        "regions": list(regions),
        "sources": sorted(set(sources)),
        "reason": reason,
    }


def _assess_localising(
    definition: SymptomDef, side: str | None, dominance: str, location: Location
) -> dict[str, object]:
    """Explained or not, and why, for a symptom that points to regions."""
    expected = expectations(definition, side, dominance)
    wanted = _or_list([e.describe() for e in expected])
    what = _describe_symptom(definition, side)
    if not location.has_tumour:
        return _outcome(False, "no_tumour", [], f"{what} points to {wanted}, but imaging found no tumour")
    deep = definition.needs_cortex and location.cortical_involvement is False
    for how, hits in (("involved", () if deep else location.involved_regions), ("adjacent", location.eloquent)):
        matched, used = _match(expected, hits)
        if matched:
            where = ", ".join(f"{h.side} {area_name(h.name)}" for h in matched)
            verb = "involves" if how == "involved" else "lies within 5 mm of"
            rules = ", ".join(sorted({e.rule.laterality for e in used}))
            reason = f"{what} is explained: the tumour {verb} {where} ({rules} rule)"
            return _outcome(True, how, matched, reason, (e.rule.source for e in used))
    wrong = _wrong_side(expected, [*location.involved_regions, *location.eloquent])
    if wrong:
        where = ", ".join(f"{area_name(h.name)} on the {h.side}" for h in wrong)
        return _outcome(False, "wrong_side", wrong, f"{what} points to {wanted}, but the tumour involves {where}")
    found = ", ".join(f"{h.side} {area_name(h.name)}" for h in location.involved_regions) or "no atlas region"
    if deep:
        found += ", without reaching the cortex"
    return _outcome(False, "none", [], f"{what} points to {wanted}; the tumour involves {found}")


def assess(symptom: ReportedSymptom, definition: SymptomDef, dominance: str, location: Location) -> SymptomCheck:
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
        "expected": [ExpectedRegion(region=e.region, sides=sorted(e.sides or ("either",))) for e in expected],
    }
    if not definition.localising:
        reason = f"{definition.name.lower()} does not localise (e.g. raised intracranial pressure); not scored"
        verdict = _outcome(None, "non_localising", [], reason, (r.source for r in definition.rules))
    else:
        verdict = _assess_localising(definition, symptom.side, dominance, location)
    return SymptomCheck.model_validate(entry | verdict)


def predicted_regions(
    symptoms: Sequence[ReportedSymptom], dominance: str, knowledge: Mapping[str, SymptomDef]
) -> list[PredictedRegion]:
    """Regions the symptoms point to overall: name, side (left/right/either) and which symptoms."""
    found: dict[tuple[str, str], list[str]] = {}
    for symptom in symptoms:
        for expectation in expectations(knowledge[symptom.code], symptom.side, dominance):
            for side in sorted(expectation.sides or ("either",)):
                codes = found.setdefault((expectation.region, side), [])
                if symptom.code not in codes:
                    codes.append(symptom.code)
    return [PredictedRegion(name=name, side=side, symptoms=codes) for (name, side), codes in sorted(found.items())]


def _verdict(assessed: list[SymptomCheck], location: Location) -> tuple[str, float | None]:
    """The verdict and concordance score (mean strength over localising symptoms)."""
    focal = [a for a in assessed if a.localising]
    if not focal:
        return NON_LOCALISING, None
    if not location.has_tumour:
        return NO_TUMOUR, 0.0
    score = round(sum(STRENGTH.get(a.match, 0.0) for a in focal) / len(focal), 3)
    explained = sum(1 for a in focal if a.explained)
    if explained == len(focal):
        return CONCORDANT, score
    return (DISCORDANT if explained == 0 else PARTIAL), score


def _summary(verdict: str, score: float | None, location: Location) -> str:
    text = f"Imaging: {location.site()}. Symptoms: {verdict}"
    if score is not None:
        text += f" (concordance {score:.2f})"
    if verdict in REVIEW:
        text += ". Flagged for clinician review"
    return text + "."


def check_inputs(symptoms: Sequence[ReportedSymptom], dominance: str, knowledge: Mapping[str, SymptomDef]) -> None:
    """Reject unknown symptom codes and dominance values with a user error."""
    if dominance not in OTHER_SIDE:
        raise UserError(f"language dominance {dominance!r} must be left or right", field="language_dominance")
    for symptom in symptoms:
        if symptom.code not in knowledge:
            raise UserError(f"unknown symptom code {symptom.code!r}", field="code")


def crosscheck(
    symptoms: Sequence[ReportedSymptom],
    dominance: str,
    location: Location,
    knowledge: Mapping[str, SymptomDef] | None = None,
) -> CrossCheck:
    """Cross-check symptoms against a location: the verdict, its score and a reason per symptom."""
    knowledge = default_knowledge() if knowledge is None else knowledge
    check_inputs(symptoms, dominance, knowledge)
    assessed = [assess(s, knowledge[s.code], dominance, location) for s in symptoms]
    verdict, score = _verdict(assessed, location)
    return CrossCheck(
        verdict=verdict,
        score=score,
        needs_review=verdict in REVIEW,
        summary=_summary(verdict, score, location),
        language_dominance=dominance,
        confirmed_location=ConfirmedLocation(
            summary=location.site(),
            hemisphere=location.hemisphere if location.has_tumour else None,
            primary_region=location.primary_region if location.has_tumour else None,
            regions=_sites(location.involved_regions),
            verdict=verdict,
        ),
        symptoms=assessed,
        predicted_regions=predicted_regions(symptoms, dominance, knowledge),
    )
