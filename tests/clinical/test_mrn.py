"""Medical record numbers: unique per issuer, entered through the CLI, matched for received studies, confirmed."""

from __future__ import annotations

import json
from datetime import date

import pytest

from neurotriage.clinical import db, intake
from neurotriage.clinical.models import Patient
from neurotriage.clinical.mrn import UNCONFIRMED_NOTE, find_or_create_by_mrn, patient_name
from neurotriage.clinical.snapshot import load_patient
from neurotriage.errors import UserError


def stored(*patients: Patient) -> list[int]:
    with db.transaction() as session:
        session.add_all(patients)
        session.flush()
        return [p.id for p in patients]


def test_mrn_is_unique_per_issuer_and_absent_mrns_do_not_collide(db_url: str) -> None:
    stored(Patient(name="A", mrn="123", mrn_issuer="HOSP"), Patient(name="B", mrn="123", mrn_issuer="OTHER"))
    stored(Patient(name="C", mrn="123"), Patient(name="D"), Patient(name="E"))
    for twin in (Patient(name="F", mrn="123", mrn_issuer="HOSP"), Patient(name="G", mrn="123")):
        with pytest.raises(UserError, match="duplicate"), db.transaction() as session:
            session.add(twin)
            session.flush()


def test_cli_adds_lists_searches_and_shows_the_mrn(db_url: str, cli) -> None:
    added = cli("patient", "add", "--name", "Ada Quill", "--mrn", " 0042 ", "--mrn-issuer", "HOSP", "--json")
    assert added.code == 0, added.err
    data = json.loads(added.out)
    assert (data["mrn"], data["mrn_issuer"], data["confirmed"]) == ("0042", "HOSP", True)
    assert cli("patient", "add", "--name", "Bram Other").code == 0
    found = cli("patient", "list", "--search", "004")
    assert "Ada Quill" in found.out and "MRN 0042 (HOSP)" in found.out and "Bram" not in found.out
    shown = cli("patient", "show", data["id"])
    assert "MRN 0042 (HOSP)" in shown.out and "UNCONFIRMED" not in shown.out


def test_cli_refuses_a_taken_mrn_and_an_issuer_alone(db_url: str, cli) -> None:
    assert cli("patient", "add", "--name", "First", "--mrn", "7", "--mrn-issuer", "H").code == 0
    twice = cli("patient", "add", "--name", "Second", "--mrn", "7", "--mrn-issuer", "H")
    assert twice.code == 2 and twice.err.count("\n") == 1
    assert "--mrn: MRN '7' (issuer 'H') already belongs to patient 1" in twice.err
    alone = cli("patient", "add", "--name", "Third", "--mrn-issuer", "H")
    assert alone.code == 2 and "--mrn-issuer: MRN issuer given without an MRN" in alone.err
    assert cli("patient", "add", "--name", "Other register", "--mrn", "7", "--mrn-issuer", "K").code == 0


def test_editing_keeps_its_own_mrn_and_refuses_another_patients(db_url: str) -> None:
    first, second = stored(Patient(name="First", mrn="1"), Patient(name="Second", mrn="2"))
    with db.transaction() as session:
        _, changed = intake.update_patient(session, first, name="First", mrn="1")
        assert changed == {}
        with pytest.raises(UserError, match="MRN '1' .* already belongs to patient") as caught:
            intake.update_patient(session, second, name="Second", mrn="1")
        assert caught.value.field == "mrn"


def test_a_known_mrn_finds_its_patient(db_url: str) -> None:
    (known,) = stored(Patient(name="Jane Doe", mrn="M1", mrn_issuer="HOSP"))
    with db.transaction() as session:
        found, created = find_or_create_by_mrn(
            session, mrn="M1", issuer="HOSP", name="DOE^JANE", birth_date=None, sex="F"
        )
        assert (found.id, created) == (known, False)
        # A study without an issuer matches the MRN when one patient holds it.
        found, created = find_or_create_by_mrn(session, mrn="M1", issuer=None, name=None, birth_date=None, sex=None)
        assert (found.id, created) == (known, False)


def test_an_unknown_mrn_creates_an_unconfirmed_patient_from_the_study(db_url: str) -> None:
    stored(Patient(name="Jane Doe", mrn="M1", mrn_issuer="HOSP"))
    with db.transaction() as session:
        made, created = find_or_create_by_mrn(
            session, mrn="M1", issuer="CLINIC", name="DOE^JANE", birth_date=date(1961, 2, 3), sex="F"
        )
        assert created and made.id != 1
        facts = (made.name, made.sex, made.birth_date, made.mrn, made.mrn_issuer, made.confirmed)
        assert facts == ("JANE DOE", "female", date(1961, 2, 3), "M1", "CLINIC", False)
        again, created = find_or_create_by_mrn(session, mrn="M1", issuer="CLINIC", name=None, birth_date=None, sex="M")
        assert (again.id, created) == (made.id, False)


def test_an_mrn_without_issuer_held_under_several_issuers_names_them(db_url: str) -> None:
    stored(Patient(name="A", mrn="9", mrn_issuer="H1"), Patient(name="B", mrn="9", mrn_issuer="H2"))
    with db.transaction() as session, pytest.raises(UserError) as caught:
        find_or_create_by_mrn(session, mrn="9", issuer=None, name="X^Y", birth_date=None, sex=None)
    assert "matches several patients: patient 1 (issuer H1), patient 2 (issuer H2)" in caught.value.message


@pytest.mark.parametrize(
    ("dicom", "expected"),
    [
        ("DOE^JANE", "JANE DOE"),
        ("Doe^Jane^Ann^Dr^III", "Dr Jane Ann Doe III"),
        ("SMITH", "SMITH"),
        ("Yamada^Tarou=山田^太郎", "Tarou Yamada"),
        ("", "Unknown patient, MRN 5"),
        (None, "Unknown patient, MRN 5"),
    ],
)
def test_dicom_names_read_given_name_first(dicom: str | None, expected: str) -> None:
    assert patient_name(dicom, "5") == expected


@pytest.mark.parametrize(("sex", "expected"), [("M", "male"), ("f", "female"), ("O", "other"), ("", "unknown")])
def test_dicom_sex_maps_to_the_models(db_url: str, sex: str, expected: str) -> None:
    with db.transaction() as session:
        made, _ = find_or_create_by_mrn(session, mrn="S", issuer=None, name="A^B", birth_date=None, sex=sex)
        assert made.sex == expected


def test_confirming_marks_the_patient_and_the_snapshot_knows(db_url: str, cli) -> None:
    with db.transaction() as session:
        made, _ = find_or_create_by_mrn(session, mrn="R1", issuer="H", name="ROE^RAY", birth_date=None, sex="M")
        pid = made.id
        snapshot = load_patient(session, pid)
        assert (snapshot.mrn, snapshot.mrn_issuer, snapshot.confirmed) == ("R1", "H", False)
    listed = cli("patient", "list")
    assert "RAY ROE" in listed.out and "UNCONFIRMED" in listed.out
    assert UNCONFIRMED_NOTE in cli("patient", "show", pid).out
    done = cli("patient", "confirm", pid)
    assert done.code == 0 and done.out.strip() == f"confirmed patient {pid}: RAY ROE"
    assert "already confirmed" in cli("patient", "confirm", pid).out
    assert "UNCONFIRMED" not in cli("patient", "list").out
    missing = cli("patient", "confirm", 999)
    assert missing.code == 2 and "patient 999: no such patient" in missing.err
