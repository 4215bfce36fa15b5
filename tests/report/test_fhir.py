"""The FHIR export: an R4 (R4B models) Bundle that parses back and carries the key codes."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from fhir.resources.R4B.bundle import Bundle

from neurotriage.report.fhir import build_fhir_bundle, reviewed_fhir_bundle


def _by_type(bundle: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for entry in bundle["entry"]:
        out.setdefault(entry["resource"]["resourceType"], []).append(entry["resource"])
    return out


def _codes(concept: dict) -> set[tuple[str, str]]:
    return {(c["system"], c["code"]) for c in concept.get("coding", [])}


def test_round_trips_through_r4b(make_input):
    bundle = build_fhir_bundle(make_input("left", verdict="discordant"))
    parsed = Bundle.model_validate_json(json.dumps(bundle))
    assert parsed.type == "collection"
    assert len(parsed.entry) == len(bundle["entry"])


def test_references_resolve_inside_the_bundle(make_input):
    bundle = build_fhir_bundle(make_input("left"))
    urls = {e["fullUrl"] for e in bundle["entry"]}
    refs = re.findall(r'"reference": "([^"]+)"', json.dumps(bundle))
    assert refs and set(refs) <= urls


def test_report_codes_volumes_and_laterality(make_input):
    resources = _by_type(build_fhir_bundle(make_input("left")))
    (report,) = resources["DiagnosticReport"]
    assert ("http://loinc.org", "24590-2") in _codes(report["code"])
    (structure,) = resources["BodyStructure"]
    assert ("http://snomed.info/sct", "83251001") in _codes(structure["location"])  # frontal lobe
    assert _codes(structure["locationQualifier"][0]) == {("http://snomed.info/sct", "7771000")}  # left
    volumes = [o for o in resources["Observation"] if "valueQuantity" in o]
    assert {o["valueQuantity"]["code"] for o in volumes} == {"mL"}
    whole = next(o for o in volumes if o["code"]["text"] == "Whole tumour volume")
    assert whole["valueQuantity"]["value"] == 0.91


def test_right_hemisphere_and_uncoded_region(make_input):
    report = make_input("right")
    report.locate.primary_region = "corpus_callosum"  # no checked SNOMED code: text only
    (structure,) = _by_type(build_fhir_bundle(report))["BodyStructure"]
    assert "coding" not in structure["location"] and structure["location"]["text"] == "corpus callosum"
    assert _codes(structure["locationQualifier"][0]) == {("http://snomed.info/sct", "24028007")}


def test_patient_symptoms_study_and_referrals(make_input):
    report = make_input("left")
    resources = _by_type(build_fhir_bundle(report))
    (patient,) = resources["Patient"]
    assert patient["identifier"][0]["value"] == "17" and patient["gender"] == "female"
    assert {c for cond in resources["Condition"] for c in _codes(cond["code"])} == {
        ("http://snomed.info/sct", "20022000"),
        ("http://snomed.info/sct", "25064002"),
    }
    (study,) = resources["ImagingStudy"]
    uids = [study["identifier"][0]["value"].removeprefix("urn:oid:")] + [s["uid"] for s in study["series"]]
    assert len(uids) == 3 and len(set(uids)) == 3  # flair + t1 series
    assert all(re.fullmatch(r"2\.25\.\d{1,39}", uid) and len(uid) <= 64 for uid in uids)
    roles = resources["PractitionerRole"]
    assert [r["practitioner"]["display"] for r in roles] == ["Dr Ada Fictional", "Dr Bea Example"]
    assert len(resources["ServiceRequest"]) == 2


def test_study_uid_depends_on_inputs_not_time(make_input):
    a = make_input("left")
    b = make_input("left", provenance=a.provenance.model_dump() | {"created_at": "2030-01-01T00:00:00+00:00"})

    def uid(report):
        return _by_type(build_fhir_bundle(report))["ImagingStudy"][0]["identifier"][0]["value"]

    assert uid(a) == uid(b)


def test_no_tumour_has_no_body_structure(make_input):
    resources = _by_type(build_fhir_bundle(make_input(None, verdict="no tumour found despite focal symptoms")))
    assert "BodyStructure" not in resources
    assert "No tumour found" in resources["DiagnosticReport"][0]["conclusion"]


def test_a_reviewed_bundle_moves_the_tumour_and_keeps_what_imaging_measured(make_input):
    written = build_fhir_bundle(make_input("right", verdict="discordant"))
    current = make_input("left", referrals=[])  # the clinician's side, its cross-check, no doctor left to refer to
    at = datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)
    reviewed = reviewed_fhir_bundle(
        written, current, at, "Clinician review by clin: location overridden.", amended=True
    )
    Bundle.model_validate_json(json.dumps(reviewed))
    before, after = _by_type(written), _by_type(reviewed)
    assert _codes(before["BodyStructure"][0]["locationQualifier"][0]) == {("http://snomed.info/sct", "24028007")}
    assert _codes(after["BodyStructure"][0]["locationQualifier"][0]) == {("http://snomed.info/sct", "7771000")}
    for kind in ("Patient", "Condition", "ImagingStudy"):
        assert after[kind] == before[kind]
    volumes = [o for o in after["Observation"] if "valueQuantity" in o]
    assert [o["valueQuantity"] for o in volumes] == [o["valueQuantity"] for o in before["Observation"][:5]]
    tumour = next(e["fullUrl"] for e in reviewed["entry"] if e["resource"]["resourceType"] == "BodyStructure")
    assert all(o["focus"] == [{"reference": tumour}] for o in volumes)
    (check,) = [o for o in after["Observation"] if "valueString" in o]
    assert check["valueString"] == "concordant"
    (report,) = after["DiagnosticReport"]
    assert (report["status"], report["issued"]) == ("amended", "2026-02-03T04:05:06Z")
    assert "Cross-check: concordant. Clinician review by clin: location overridden." in report["conclusion"]
    assert "ServiceRequest" not in after and before["DiagnosticReport"][0]["status"] == "final"
    refs = set(re.findall(r'"reference": "([^"]+)"', json.dumps(reviewed)))
    assert refs <= {e["fullUrl"] for e in reviewed["entry"]}
