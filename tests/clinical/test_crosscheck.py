"""Cross-check of symptoms against a located tumour: pure function, no database."""

from __future__ import annotations

import pytest

from neurotriage.anatomy.location import parse_location
from neurotriage.clinical.crosscheck import (
    CONCORDANT,
    DISCORDANT,
    NO_TUMOUR,
    NON_LOCALISING,
    PARTIAL,
    ReportedSymptom,
    crosscheck,
    expected_sides,
)
from neurotriage.errors import UserError

from .locates import healthy, locate


def check(symptoms: list[ReportedSymptom], dominance: str, doc: dict) -> dict:
    """The cross-check of a locate document (validated as the clinical side reads it) as JSON data."""
    return crosscheck(symptoms, dominance, parse_location(doc)).model_dump(mode="json")


LEFT_WEAKNESS = ReportedSymptom("hemiparesis", "left")
BROCA_FRONTAL = (("frontal_lobe", 20.0), ("broca", 2.0))


def only(result: dict, code: str) -> dict:
    [entry] = [s for s in result["symptoms"] if s["code"] == code]
    return entry


def test_left_weakness_with_right_frontal_tumour_is_concordant() -> None:
    result = check([LEFT_WEAKNESS], "left", locate("right"))
    assert result["verdict"] == CONCORDANT
    assert result["score"] == 1.0
    assert not result["needs_review"]
    entry = only(result, "hemiparesis")
    assert entry["explained"] is True and entry["match"] == "involved"
    assert {"name": "primary_motor", "side": "right"} in entry["regions"]
    assert "contralateral" in entry["reason"]
    assert result["confirmed_location"] == {
        "source": "imaging",
        "summary": "right frontal lobe",
        "hemisphere": "right",
        "primary_region": "frontal_lobe",
        "verdict": CONCORDANT,
        "regions": [{"name": n, "side": "right"} for n in ("frontal_lobe", "primary_motor", "corticospinal_tract")],
    }


def test_left_weakness_with_left_frontal_tumour_is_discordant_and_flagged() -> None:
    result = check([LEFT_WEAKNESS], "left", locate("left"))
    assert result["verdict"] == DISCORDANT
    assert result["score"] == 0.0
    assert result["needs_review"] is True
    assert "clinician review" in result["summary"]
    entry = only(result, "hemiparesis")
    assert entry["explained"] is False and entry["match"] == "wrong_side"
    assert "right primary motor cortex" in entry["reason"] and "primary motor cortex on the left" in entry["reason"]


@pytest.mark.parametrize(
    ("dominance", "tumour_side", "verdict"),
    [
        ("right", "right", CONCORDANT),
        ("right", "left", DISCORDANT),
        ("left", "right", DISCORDANT),
        ("left", "left", CONCORDANT),
    ],
)
def test_aphasia_follows_the_patients_language_dominance(dominance: str, tumour_side: str, verdict: str) -> None:
    # Language areas are reported on both sides by locate; only the patient's dominance decides.
    doc = locate(tumour_side, regions=BROCA_FRONTAL, eloquent=("broca",))
    result = check([ReportedSymptom("aphasia")], dominance, doc)
    assert result["verdict"] == verdict
    assert result["predicted_regions"] == [
        {"name": "broca", "side": dominance, "symptoms": ["aphasia"]},
        {"name": "wernicke", "side": dominance, "symptoms": ["aphasia"]},
    ]


def test_headache_alone_is_non_localising() -> None:
    result = check([ReportedSymptom("headache")], "left", locate("right"))
    assert result["verdict"] == NON_LOCALISING
    assert result["score"] is None and not result["needs_review"]
    entry = only(result, "headache")
    assert entry["explained"] is None and entry["match"] == "non_localising"
    assert entry["sources"] and result["predicted_regions"] == []


def test_no_tumour_with_focal_symptoms_is_flagged() -> None:
    result = check([LEFT_WEAKNESS, ReportedSymptom("headache")], "left", healthy())
    assert result["verdict"] == NO_TUMOUR
    assert result["needs_review"] is True and result["score"] == 0.0
    assert only(result, "hemiparesis")["match"] == "no_tumour"
    assert result["confirmed_location"]["summary"] == "no tumour found"
    assert {p["name"] for p in result["predicted_regions"]} == {
        "primary_motor",
        "corticospinal_tract",
        "internal_capsule",
    }


def test_healthy_scan_with_only_headache_needs_no_review() -> None:
    result = check([ReportedSymptom("headache")], "left", healthy())
    assert result["verdict"] == NON_LOCALISING and not result["needs_review"]


def test_one_of_two_focal_symptoms_explained_is_partial() -> None:
    result = check([LEFT_WEAKNESS, ReportedSymptom("homonymous_hemianopia", "left")], "left", locate())
    assert result["verdict"] == PARTIAL
    assert result["score"] == 0.5 and result["needs_review"]
    assert only(result, "homonymous_hemianopia")["match"] == "none"


def test_area_within_5_mm_explains_with_lower_strength() -> None:
    doc = locate(regions=(("frontal_lobe", 20.0),), eloquent=("primary_motor",))
    result = check([LEFT_WEAKNESS], "left", doc)
    assert result["verdict"] == CONCORDANT
    assert only(result, "hemiparesis")["match"] == "adjacent"
    assert result["score"] == 0.75


def test_unknown_side_accepts_either_hemisphere() -> None:
    for side in ("left", "right"):
        assert check([ReportedSymptom("hemiparesis")], "left", locate(side))["verdict"] == CONCORDANT


def test_midline_brainstem_explains_a_lateral_cranial_nerve_sign() -> None:
    doc = locate(regions=(("brainstem", 6.0),), eloquent=())
    doc["regions"][0]["side"] = "midline"
    assert check([ReportedSymptom("facial_palsy", "left")], "left", doc)["verdict"] == CONCORDANT


def test_focal_seizure_needs_the_tumour_to_reach_the_cortex() -> None:
    seizure = [ReportedSymptom("focal_seizure")]
    assert check(seizure, "left", locate())["verdict"] == CONCORDANT
    deep = locate(cortical_involvement=False)
    result = check(seizure, "left", deep)
    assert result["verdict"] == DISCORDANT
    assert "without reaching the cortex" in only(result, "focal_seizure")["reason"]


@pytest.mark.parametrize(
    ("laterality", "side", "dominance", "expected"),
    [
        ("contralateral", "left", "left", {"right"}),
        ("contralateral", "bilateral", "left", {"left", "right"}),
        ("ipsilateral", "right", "left", {"right"}),
        ("dominant", None, "right", {"right"}),
        ("non_dominant", None, "left", {"right"}),
        ("either", "left", "left", None),
        ("contralateral", None, "left", None),
    ],
)
def test_expected_sides(laterality: str, side: str | None, dominance: str, expected: set | None) -> None:
    result = expected_sides(laterality, side, dominance)
    assert (None if result is None else set(result)) == expected


def test_bad_inputs_are_user_errors() -> None:
    with pytest.raises(UserError, match="unknown symptom code 'limp'"):
        check([ReportedSymptom("limp")], "left", locate())
    with pytest.raises(UserError, match="dominance 'up'"):
        check([LEFT_WEAKNESS], "up", locate())
    broken = locate()
    broken["regions"][0]["side"] = "north"
    with pytest.raises(UserError, match=r"field regions\.0\.side"):
        check([LEFT_WEAKNESS], "left", broken)
    with pytest.raises(UserError, match="field volumes_ml"):
        check([LEFT_WEAKNESS], "left", {"regions": []})
