"""The fictional sample data set: sizes, links to synthetic cases, determinism, end to end."""

from __future__ import annotations

import json
import random

from sqlalchemy import func, select

from neurotriage.clinical import db
from neurotriage.clinical.models import Doctor, Hospital, Patient, PatientSymptom, Study
from neurotriage.clinical.sample import CITIES, doctor_rows, hospital_rows


def snapshot() -> dict:
    with db.transaction() as session:
        return {
            "hospitals": session.execute(select(Hospital.city, Hospital.lat, Hospital.lon).order_by(Hospital.id)).all(),
            "doctors": session.execute(select(Doctor.name, Doctor.specialty).order_by(Doctor.id)).all(),
            "patients": session.scalars(select(Patient.name).order_by(Patient.id)).all(),
            "studies": session.execute(select(Study.case_ref, Study.synthetic_seed).order_by(Study.id)).all(),
            "symptoms": session.scalar(select(func.count()).select_from(PatientSymptom)),
        }


def test_seed_loads_linked_fictional_data_once_and_deterministically(db_url: str, cli, reset_data) -> None:
    assert cli("db", "seed").code == 2  # --sample is required
    first = cli("db", "seed", "--sample")
    assert first.code == 0 and "500 doctors" in first.out
    data = snapshot()
    assert len(data["hospitals"]) >= 50 and len({h.city for h in data["hospitals"]}) >= 50
    assert len(data["doctors"]) == 500 and len(data["patients"]) == 20
    assert data["studies"] == [(f"SYN_{i:04d}", i) for i in range(20)]
    assert data["symptoms"] >= 20
    assert "already loaded" in cli("db", "seed", "--sample").out
    assert snapshot() == data
    reset_data(db_url)
    assert cli("db", "seed", "--sample").code == 0
    assert snapshot() == data


def test_every_sample_patient_gets_a_referral(db_url: str, cli) -> None:
    assert cli("db", "seed", "--sample").code == 0
    for patient in json.loads(cli("patient", "list", "--json").out):
        shown = json.loads(cli("patient", "show", patient["id"], "--json").out)
        assert shown["symptoms"] and shown["studies"][0]["case"].startswith("SYN_")
        report = json.loads(cli("refer", "--patient", patient["id"], "--limit", "5", "--json").out)
        assert report["basis"] == "symptoms" and len(report["recommendations"]) == 5
        assert all(r["reasons"] for r in report["recommendations"])


def test_generators_are_seeded_and_use_real_city_coordinates() -> None:
    a, b = hospital_rows(80, random.Random(7)), hospital_rows(80, random.Random(7))
    assert a == b
    centres = {c[0]: (c[2], c[3]) for c in CITIES}
    for row in a:
        lat, lon = centres[row["city"]]
        assert abs(row["lat"] - lat) < 0.1 and abs(row["lon"] - lon) < 0.1
        assert "fictional" in row["name"]
    assert doctor_rows(30, [1, 2], random.Random(1)) == doctor_rows(30, [1, 2], random.Random(1))
