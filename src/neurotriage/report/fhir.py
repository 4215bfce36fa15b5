"""The report as an HL7 FHIR R4 Bundle (collection), validated with fhir.resources' R4B models.

The package's top-level models are R5; R4B is wire-compatible with R4 for every resource
used here. Codes are only those checked against published value sets (SNOMED CT body
sites and laterality from neurotriage.terminology, LOINC 24590-2 "MR Brain", DICOM modality
MR); a region without a checked code is sent as text, never with a made-up code. NIfTI has no DICOM UIDs, so study
and series UIDs are `2.25.<uuid-int>` OIDs, name-based on the inputs so a re-export of the
same study gives the same UIDs.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from neurotriage import NOTICE
from neurotriage.clinical.scoring import Recommendation
from neurotriage.report.inputs import ReportInput
from neurotriage.report.text import NO_TUMOUR_SENTENCE, fmt
from neurotriage.terminology import BODY_STRUCTURES, LATERALITY, SNOMED_SYSTEM

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
DICOM = "http://dicom.nema.org/resources/ontology/DCM"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
PATIENT_ID_SYSTEM = "urn:neurotriage:patient"
MR_BRAIN = {"system": LOINC, "code": "24590-2", "display": "MR Brain"}
MR_MODALITY = {"system": DICOM, "code": "MR", "display": "Magnetic Resonance"}
VOLUME_NAMES = {
    "whole_tumour": "Whole tumour volume",
    "tumour_core": "Tumour core volume",
    "enhancing": "Enhancing tumour volume",
    "necrosis": "Necrotic / non-enhancing core volume",
    "edema": "Peritumoural edema volume",
}
# What a review leaves as written at diagnosis (with the volume Observations, whose focus follows the location).
KEPT_AS_WRITTEN = ("Patient", "Condition", "ImagingStudy")
GENDERS = {"m": "male", "male": "male", "f": "female", "female": "female", "o": "other", "other": "other"}


def dicom_uid(*parts: str) -> str:
    """A DICOM UID under the 2.25 arc from a name-based UUID of `parts` (at most 44 chars)."""
    return f"2.25.{uuid.uuid5(uuid.NAMESPACE_OID, '|'.join(parts)).int}"


def _concept(coding: dict[str, str] | None, text: str) -> dict[str, Any]:
    return {"coding": [coding], "text": text} if coding else {"text": text}


def _snomed(code: str | None, display: str) -> dict[str, str] | None:
    return {"system": SNOMED_SYSTEM, "code": code, "display": display} if code else None


def _ref(full_url: str) -> dict[str, str]:
    return {"reference": full_url}


class _Builder:
    """Collects resources with urn:uuid full URLs so they can reference each other."""

    def __init__(self, seed: str, entries: list[dict[str, Any]] | None = None) -> None:
        self.seed = seed
        self.entries: list[dict[str, Any]] = list(entries or [])

    def add(self, resource: dict[str, Any], key: str) -> str:
        rid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.seed}|{key}"))
        full_url = f"urn:uuid:{rid}"
        self.entries.append({"fullUrl": full_url, "resource": {**resource, "id": rid}})
        return full_url


def _patient(report: ReportInput) -> dict[str, Any]:
    p = report.patient
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "identifier": [{"system": PATIENT_ID_SYSTEM, "value": p.id}],
        "gender": GENDERS.get((p.sex or "").strip().lower(), "unknown"),
    }
    if p.name:
        resource["name"] = [{"text": p.name}]
    if p.birth_date:
        resource["birthDate"] = p.birth_date.isoformat()
    return resource


def _conditions(report: ReportInput, patient: str) -> list[dict[str, Any]]:
    conditions = []
    for s in report.symptoms:
        name = s.name or s.code
        condition = {
            "resourceType": "Condition",
            "clinicalStatus": {"coding": [{"system": CONDITION_CLINICAL, "code": "active"}]},
            "code": _concept(_snomed(s.snomed, name), name),
            "subject": _ref(patient),
        }
        if s.side:
            condition["note"] = [{"text": f"Side: {s.side}"}]
        conditions.append(condition)
    return conditions


def _imaging_study(report: ReportInput, patient: str, study_uid: str) -> dict[str, Any]:
    sequences = list(report.imaging.images) if report.imaging else []
    series = [
        {
            "uid": dicom_uid(study_uid, key),
            "number": number,
            "modality": MR_MODALITY,
            "description": f"{key.upper()} (NIfTI)",
        }
        for number, key in enumerate(sequences, start=1)
    ]
    study: dict[str, Any] = {
        "resourceType": "ImagingStudy",
        "status": "available",
        "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:{study_uid}"}],
        "modality": [MR_MODALITY],
        "subject": _ref(patient),
        "procedureCode": [_concept(MR_BRAIN, "MR Brain")],
        "description": f"Brain MRI, case {report.imaging.case_id}" if report.imaging else "Brain MRI",
    }
    if series:
        study |= {"numberOfSeries": len(series), "series": series}
    return study


def _volume_observations(report: ReportInput, patient: str, study: str, tumour: str | None) -> list[dict[str, Any]]:
    if report.locate is None:
        return []
    volumes = report.locate.volumes_ml.model_dump()
    observations = []
    for key, name in VOLUME_NAMES.items():
        observation = {
            "resourceType": "Observation",
            "status": "final",
            "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "imaging"}]}],
            "code": {"text": name},
            "subject": _ref(patient),
            "derivedFrom": [_ref(study)],
            "valueQuantity": {"value": round(float(volumes[key]), 2), "unit": "mL", "system": UCUM, "code": "mL"},
        }
        observations.append(observation | _focus(tumour))  # the volume is of the tumour the BodyStructure locates
    return observations


def _body_structure(report: ReportInput, patient: str) -> dict[str, Any] | None:
    locate = report.locate
    if not report.has_tumour or locate is None:
        return None
    region = locate.primary_region
    hemisphere = locate.hemisphere
    site = BODY_STRUCTURES.get(region or "brain")
    structure: dict[str, Any] = {
        "resourceType": "BodyStructure",
        "description": locate.summary or "Brain tumour (automated MRI segmentation)",
        "location": _concept(_snomed(*site) if site else None, fmt(region or "brain")),
        "patient": _ref(patient),
    }
    if hemisphere in LATERALITY:
        structure["locationQualifier"] = [_concept(_snomed(*LATERALITY[hemisphere]), hemisphere)]
    return structure


def _crosscheck_observation(report: ReportInput, patient: str) -> dict[str, Any] | None:
    if report.crosscheck is None:
        return None
    return {
        "resourceType": "Observation",
        "status": "preliminary" if report.crosscheck.needs_review else "final",
        "code": {"text": "Concordance of presenting symptoms with tumour location"},
        "subject": _ref(patient),
        "valueString": report.crosscheck.verdict,
    }


def _referral(build: _Builder, ref: Recommendation, rank: int, patient: str, report_url: str) -> None:
    doctor, hospital = ref.doctor, ref.hospital
    practitioner = build.add({"resourceType": "Practitioner", "name": [{"text": doctor.name}]}, f"practitioner|{rank}")
    role: dict[str, Any] = {
        "resourceType": "PractitionerRole",
        "active": True,
        "practitioner": _ref(practitioner) | {"display": doctor.name},
    }
    organization = {"resourceType": "Organization", "name": hospital.name}
    if hospital.city:
        organization["address"] = [{"city": hospital.city}]
    role["organization"] = _ref(build.add(organization, f"organization|{rank}")) | {"display": hospital.name}
    if doctor.specialty:
        role["specialty"] = [{"text": doctor.specialty}]
    role_url = build.add(role, f"role|{rank}")
    reasons = "; ".join(ref.reasons)
    build.add(
        {
            "resourceType": "ServiceRequest",
            "status": "draft",
            "intent": "proposal",  # a recommendation for a clinician to act on, not an order
            "subject": _ref(patient),
            "code": {"text": "Referral for brain tumour assessment"},
            "performer": [_ref(role_url)],
            "reasonReference": [_ref(report_url)],
            "note": [{"text": f"Rank {ref.rank}, score {fmt(ref.score)}. {reasons}".strip()}],
        },
        f"request|{rank}",
    )


def _diagnostic_report(
    report: ReportInput,
    patient: str,
    study: str,
    results: list[str],
    issued: datetime,
    review: str = "",
    status: str = "final",
) -> dict[str, Any]:
    summary = (report.locate.summary if report.locate else "") or ("" if report.has_tumour else NO_TUMOUR_SENTENCE)
    verdict = report.crosscheck.verdict if report.crosscheck else None
    parts = (summary, f"Cross-check: {verdict}." if verdict else "", review, NOTICE)
    return {
        "resourceType": "DiagnosticReport",
        "status": status,
        "code": _concept(MR_BRAIN, "MR Brain"),
        "subject": _ref(patient),
        "issued": issued.isoformat(),
        "imagingStudy": [_ref(study)],
        "result": [_ref(r) for r in results],
        "conclusion": " ".join(part for part in parts if part),
    }


def build_fhir_bundle(report: ReportInput) -> dict[str, Any]:
    """An R4 collection Bundle of the report, validated by fhir.resources.R4B; returns JSON-ready dict."""
    case_id = report.imaging.case_id if report.imaging else ""
    study_key = "|".join([report.patient.id, case_id, *(f.sha256 for f in report.provenance.inputs)])
    created = report.provenance.created_at.isoformat()
    # Resource ids vary per report; the study UID depends on the study's inputs only.
    build = _Builder(f"{study_key}|{created}")
    patient = build.add(_patient(report), "patient")
    for number, condition in enumerate(_conditions(report, patient)):
        build.add(condition, f"condition|{number}")
    study = build.add(_imaging_study(report, patient, dicom_uid("study", study_key)), "study")
    structure = _body_structure(report, patient)
    tumour = build.add(structure, "location") if structure else None
    observations = _volume_observations(report, patient, study, tumour)
    results = [build.add(obs, f"volume|{n}") for n, obs in enumerate(observations)]
    crosscheck = _crosscheck_observation(report, patient)
    if crosscheck:
        results.append(build.add(crosscheck, "crosscheck"))
    report_url = build.add(_diagnostic_report(report, patient, study, results, report.provenance.created_at), "report")
    for rank, ref in enumerate(report.referrals, start=1):
        _referral(build, ref, rank, patient, report_url)
    return _validated(build, created)


def _validated(build: _Builder, timestamp: str) -> dict[str, Any]:
    """The collected resources as a collection Bundle, validated by fhir.resources.R4B."""
    from fhir.resources.R4B.bundle import Bundle  # fhir.resources: only when a bundle is built (start-up time)

    bundle = {"resourceType": "Bundle", "type": "collection", "timestamp": timestamp, "entry": build.entries}
    return Bundle.model_validate(bundle).model_dump(mode="json", exclude_none=True)


def reviewed_fhir_bundle(
    bundle: dict[str, Any], current: ReportInput, at: datetime, review: str, *, amended: bool
) -> dict[str, Any]:
    """The bundle written at diagnosis as it stands after a clinician's review (`review`, one sentence, goes into
    the DiagnosticReport's conclusion; its status is amended when the review or a later cross-check changed the
    result, else final): the patient, symptoms, study and volumes as written; the tumour's location, the
    cross-check, the report and the referrals rebuilt from `current`, which holds the current location,
    cross-check and referrals."""
    kept, volumes, urls = [], [], {}
    for entry in bundle["entry"]:
        kind = entry["resource"]["resourceType"]
        urls.setdefault(kind, entry["fullUrl"])
        if kind in KEPT_AS_WRITTEN:
            kept.append(entry)
        elif kind == "Observation" and "valueQuantity" in entry["resource"]:
            volumes.append(entry)
    patient, study = urls["Patient"], urls["ImagingStudy"]
    build = _Builder(f"{urls['DiagnosticReport']}|{at.isoformat()}", kept)
    structure = _body_structure(current, patient)
    tumour = build.add(structure, "location") if structure else None
    for entry in volumes:
        resource = {k: v for k, v in entry["resource"].items() if k != "focus"}
        build.entries.append({"fullUrl": entry["fullUrl"], "resource": resource | _focus(tumour)})
    results = [entry["fullUrl"] for entry in volumes]
    crosscheck = _crosscheck_observation(current, patient)
    if crosscheck:
        results.append(build.add(crosscheck, "crosscheck"))
    status = "amended" if amended else "final"
    report_url = build.add(_diagnostic_report(current, patient, study, results, at, review, status), "report")
    for rank, ref in enumerate(current.referrals, start=1):
        _referral(build, ref, rank, patient, report_url)
    return _validated(build, at.isoformat())


def _focus(tumour: str | None) -> dict[str, Any]:
    return {"focus": [_ref(tumour)]} if tumour else {}
