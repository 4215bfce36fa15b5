"""The built-in knowledge base: codes from the verified table, valid rules, a source on each."""

from __future__ import annotations

import re

import pytest

from neurotriage.clinical.knowledge import REGION_SNOMED, REGIONS, SYMPTOMS, default_knowledge
from neurotriage.clinical.models import LATERALITIES
from neurotriage.terminology import BODY_STRUCTURES

# The verified SNOMED CT table, keyed by the project's slug for each concept.
VERIFIED_SNOMED = {
    "headache": "25064002",
    "seizure": "91175000",
    "hemiparesis": "20022000",
    "aphasia": "87486003",
    "dysphasia": "20301004",
    "visual_field_defect": "12184005",
    "homonymous_hemianopia": "34063005",
    "ataxia": "20262006",
    "cerebellar_ataxia": "85102008",
    "memory_impairment": "386807006",
    "personality_change": "192073007",
    "nausea": "422587007",
    "vomiting": "422400008",
    "diplopia": "24982008",
    "dysarthria": "8011004",
    "facial_palsy": "280816001",
}
VERIFIED_SITES = {
    "frontal_lobe": "83251001",
    "temporal_lobe": "78277001",
    "parietal_lobe": "16630005",
    "occipital_lobe": "31065004",
    "cerebellum": "113305005",
    "brainstem": "15926001",
    "insula": "36169008",
    "thalamus": "42695009",
}


def rules_of(code: str) -> set[tuple[str | None, str]]:
    return {(r.region, r.laterality) for r in default_knowledge()[code].rules}


def test_snomed_codes_are_exactly_the_verified_ones() -> None:
    assert {s.code: s.snomed for s in SYMPTOMS if s.snomed} == VERIFIED_SNOMED
    assert REGION_SNOMED == VERIFIED_SITES


def test_every_coded_body_structure_is_a_knowledge_base_region_with_the_same_code() -> None:
    # The FHIR export codes regions from the same table: a region it codes must be coded here too.
    coded = {name: code for name, (code, _) in BODY_STRUCTURES.items() if name != "brain"}
    assert set(coded) <= set(REGIONS)
    assert coded == REGION_SNOMED


def test_about_twenty_distinct_symptoms() -> None:
    codes = [s.code for s in SYMPTOMS]
    assert 18 <= len(codes) <= 30
    assert len(set(codes)) == len(codes)


@pytest.mark.parametrize("symptom", SYMPTOMS, ids=lambda s: s.code)
def test_every_rule_is_valid_and_sourced(symptom) -> None:
    assert symptom.rules
    for rule in symptom.rules:
        assert rule.laterality in LATERALITIES
        assert (rule.region is None) == (rule.laterality == "non_localising")
        assert rule.region is None or rule.region in REGIONS
        assert re.search(r"\b(19|20)\d\d\b", rule.source), rule.source


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (
            "hemiparesis",
            {
                ("primary_motor", "contralateral"),
                ("corticospinal_tract", "contralateral"),
                ("internal_capsule", "contralateral"),
            },
        ),
        ("expressive_aphasia", {("broca", "dominant")}),
        ("receptive_aphasia", {("wernicke", "dominant")}),
        ("homonymous_hemianopia", {("primary_visual", "contralateral"), ("optic_radiation", "contralateral")}),
        ("cerebellar_ataxia", {("cerebellum", "ipsilateral")}),
        ("cortical_sensory_loss", {("primary_somatosensory", "contralateral"), ("parietal_lobe", "contralateral")}),
        ("neglect", {("parietal_lobe", "non_dominant")}),
        ("personality_change", {("frontal_lobe", "either")}),
        ("apathy", {("frontal_lobe", "either")}),
        ("memory_impairment", {("medial_temporal", "either")}),
        (
            "focal_seizure",
            {(lobe, "either") for lobe in ("frontal_lobe", "temporal_lobe", "parietal_lobe", "occipital_lobe")},
        ),
        ("central_facial_weakness", {("primary_motor", "contralateral"), ("internal_capsule", "contralateral")}),
        ("facial_palsy", {("brainstem", "ipsilateral")}),
        ("diplopia", {("brainstem", "either")}),
        ("sixth_nerve_palsy", {(None, "non_localising")}),
        ("headache", {(None, "non_localising")}),
        ("vomiting", {(None, "non_localising")}),
        ("papilloedema", {(None, "non_localising")}),
    ],
)
def test_issue_examples_are_encoded(code: str, expected: set) -> None:
    assert rules_of(code) == expected
