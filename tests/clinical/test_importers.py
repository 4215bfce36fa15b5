"""CSV import: every row validated, errors by row and column, all or nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from neurotriage.clinical import db, importers, intake
from neurotriage.clinical.models import Doctor, Hospital, Patient
from neurotriage.errors import UserError

HOSPITALS = """code,name,address,city,country,lat,lon,capabilities
H1,Harebell Infirmary,1 Fictional Lane,Leeds,United Kingdom,53.80,-1.55,awake_craniotomy;neuro_icu
H2,"Moonwort Institute, East",,York,United Kingdom,53.96,-1.08,
"""
DOCTORS = """name,hospital_code,specialty,expertise,accepting,wait_days
Dr Ada Quillfeather,H1,neurosurgery,frontal_lobe;broca,true,12
Dr Bram Marrowby,H2,neuro-oncology,,no,
"""


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding=encoding)
    return path


def count(model) -> int:
    with db.transaction() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_hospitals_doctors_and_patients_import(db_url: str, cli, tmp_path: Path) -> None:
    assert cli("db", "import", "hospitals", write(tmp_path, "h.csv", HOSPITALS)).code == 0
    result = cli("db", "import", "doctors", write(tmp_path, "d.csv", DOCTORS))
    assert result.code == 0 and "imported 2 doctors" in result.out
    patients = (
        "name,sex,birth_date,city,lat,lon,language_dominance\n"
        "Zoë O'Neil,female,1970-02-03,Leeds,53.8,-1.5,right\n"
        "No Home,,,,,,\n"
    )
    # Spreadsheet exports often start with a byte-order mark.
    assert cli("db", "import", "patients", write(tmp_path, "p.csv", patients, "utf-8-sig")).code == 0
    with db.transaction() as session:
        first = session.scalar(select(Hospital).where(Hospital.code == "H1"))
        assert first.capabilities == ["awake_craniotomy", "neuro_icu"] and first.lat == 53.8
        bram = session.scalar(select(Doctor).where(Doctor.name == "Dr Bram Marrowby"))
        assert (bram.accepting, bram.wait_days, bram.expertise) == (False, 0, [])
    listed = json.loads(cli("patient", "list", "--json").out)
    assert [(p["name"], p["language_dominance"], p["lat"]) for p in listed] == [
        ("Zoë O'Neil", "right", 53.8),
        ("No Home", "left", None),
    ]


def test_errors_are_listed_by_row_and_column_and_nothing_is_imported(db_url: str, cli, tmp_path: Path) -> None:
    bad = HOSPITALS + "H3,Bad One,,Nowhere,,north,200,teleporter\nH1,Twice,,Leeds,,53,-1,\n"
    result = cli("db", "import", "hospitals", write(tmp_path, "h.csv", bad))
    assert result.code == 2 and result.err.count("\n") == 1
    for expected in (
        "nothing imported, 4 error(s)",
        "row 4, column lat: 'north' is not a number",
        "row 4, column lon: '200' is outside -180..180",
        "row 4, column capabilities: unknown 'teleporter'",
        "row 5, column code: 'H1' appears twice",
    ):
        assert expected in result.err
    assert count(Hospital) == 0


def test_doctors_need_known_hospitals(db_url: str, cli, tmp_path: Path) -> None:
    assert cli("db", "import", "hospitals", write(tmp_path, "h.csv", HOSPITALS)).code == 0
    bad = DOCTORS + "Dr Nobody,H9,surgeon,,maybe,-3\n"
    result = cli("db", "import", "doctors", write(tmp_path, "d.csv", bad))
    assert result.code == 2
    for expected in (
        "row 4, column hospital_code: no hospital with code 'H9'",
        "row 4, column specialty: 'surgeon'",
        "row 4, column accepting: 'maybe'",
        "row 4, column wait_days: '-3' is outside",
    ):
        assert expected in result.err
    assert count(Doctor) == 0
    again = cli("db", "import", "hospitals", write(tmp_path, "h.csv", HOSPITALS))
    assert again.code == 2 and "'H1' already exists in the database" in again.err
    assert count(Hospital) == 2


def test_bad_files_are_rejected(db_url: str, cli, tmp_path: Path) -> None:
    cases = {
        "missing column(s) lat": "code,name,city,lon\nH1,A,B,1\n",
        "unknown column(s) colour": "name,colour\nA,blue\n",
        "no data rows": "name,sex\n",
        "empty file": "",
        "more fields than the header": "name,sex\nA,female,extra\n",
    }
    for message, text in cases.items():
        kind = "hospitals" if "lat" in message else "patients"
        result = cli("db", "import", kind, write(tmp_path, "x.csv", text))
        assert result.code == 2 and message in result.err, (message, result.err)
    assert cli("db", "import", "patients", tmp_path / "absent.csv").err.endswith("absent.csv: no such file\n")
    latin1 = write(tmp_path, "l.csv", "name\nJosé\n", encoding="latin-1")
    assert "not a readable UTF-8 CSV" in cli("db", "import", "patients", latin1).err
    assert count(Patient) == 0


PATIENT_HEADER = "name,sex,birth_date,city,lat,lon,language_dominance\n"


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        # The quote never closes: without a check every later row would become part of one name.
        ('Ann,female,,,,,\n"Bob,male,,,,,\nCy,male,,,,,\nDee,female,,,,,\n', "row 3: a quote opened in this row"),
        ('Ann,female,,,,,\n"Bob,male,,,,,\nCy",male,,,,,\n', "row 3: a quote opened in this row"),
        ('Ann,female,,,,,\nBob,male,,,,,\n"Cy,male,,,,,', "row 4: a quote opened in this row"),
        ('Ann,female,,,,,\n"Bob" Brown,male,,,,,\n', "row 3: malformed CSV (',' expected after '\"')"),
    ],
)
def test_unbalanced_quotes_are_refused_with_their_row(
    db_url: str, cli, tmp_path: Path, rows: str, message: str
) -> None:
    path = write(tmp_path, "p.csv", PATIENT_HEADER + rows)
    result = cli("db", "import", "patients", path)
    assert result.code == 2 and result.err.count("\n") == 1
    assert f"{path}: {message}" in result.err and "nothing imported" in result.err
    assert count(Patient) == 0


def test_control_and_bidirectional_characters_are_refused(db_url: str, cli, tmp_path: Path) -> None:
    # A NUL must be refused before the database: PostgreSQL cannot store one in a text column.
    rows = "Nul\x00Byte,,,,,,\nTab\tName,,,,,,\nMallory,,,Leeds\u202e,,,\nMarked\u200f,,,,,,\nPlain Name,,,,,,\n"
    result = cli("db", "import", "patients", write(tmp_path, "p.csv", PATIENT_HEADER + rows))
    assert result.code == 2 and result.err.count("\n") == 1
    for expected in (
        "nothing imported, 4 error(s)",
        "row 2, column name: contains a control character (U+0000) at character 4",
        "row 3, column name: contains a control character (U+0009) at character 4",
        "row 4, column city: contains an invisible formatting character (U+202E) at character 6",
        "row 5, column name: contains an invisible formatting character (U+200F) at character 7",
    ):
        assert expected in result.err
    assert "row 6" not in result.err
    hospital = "code,name,city,lat,lon\nH\x851,Harebell,Leeds,53.8,-1.55\n"
    result = cli("db", "import", "hospitals", write(tmp_path, "h.csv", hospital))
    assert result.code == 2 and "row 2, column code: contains a control character (U+0085)" in result.err
    assert count(Patient) == count(Hospital) == 0


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("Nul\x00Byte", "--name: name contains a control character (U+0000) at character 4"),
        ("Tab\tName", "--name: name contains a control character (U+0009)"),
        ("\u2066Isolated\u2069", "--name: name contains an invisible formatting character (U+2066) at character 1"),
    ],
)
def test_patient_add_refuses_the_same_characters(db_url: str, cli, name: str, message: str) -> None:
    result = cli("patient", "add", "--name", name)
    assert result.code == 2 and result.err.count("\n") == 1 and message in result.err
    city = cli("patient", "add", "--name", "Ada", "--city", "Leeds\u202d")
    assert city.code == 2 and "--city: city contains an invisible formatting character (U+202D)" in city.err
    assert count(Patient) == 0


def test_probable_duplicate_patients_need_allowing(db_url: str, cli, tmp_path: Path) -> None:
    added = cli("patient", "add", "--name", "Ada Quillfeather", "--birth-date", "1961-04-02", "--json")
    stored_id = json.loads(added.out)["id"]
    rows = (
        "Bram Marrowby,male,1950-01-01,,,,\n"
        " bram  MARROWBY ,male,1950-01-01,,,,\n"  # same person: case and spacing differ
        "Bram Marrowby,male,1950-01-02,,,,\n"  # another birth date: another person
        "Cosima Thistledown,female,,,,,\n"  # no birth date: a name alone is no evidence
        "Cosima Thistledown,female,,,,,\n"
        "ADA QUILLFEATHER,female,1961-04-02,,,,\n"
    )
    path = write(tmp_path, "p.csv", PATIENT_HEADER + rows)
    refused = cli("db", "import", "patients", path)
    assert refused.code == 2 and refused.err.count("\n") == 1
    for expected in (
        "nothing imported, 2 error(s)",
        "row 3, column name: probable duplicate of row 2 (same name and birth date)",
        f"row 7, column name: probable duplicate of patient {stored_id} in the database",
        "pass --allow-duplicates to import probable duplicates anyway",
    ):
        assert expected in refused.err
    assert count(Patient) == 1
    allowed = cli("db", "import", "patients", path, "--allow-duplicates")
    assert allowed.code == 0 and "imported 6 patients" in allowed.out
    assert count(Patient) == 7


def test_duplicates_through_the_library(db_url: str, tmp_path: Path) -> None:
    path = write(tmp_path, "p.csv", PATIENT_HEADER + "Ann Lee,,1980-05-06,,,,\nann lee,,1980-05-06,,,,\n")
    refused_duplicate = pytest.raises(UserError, match="row 3, column name: probable duplicate of row 2")
    with refused_duplicate as refused, db.transaction() as session:
        importers.import_csv(session, "patients", path)
    assert refused.value.field == "allow_duplicates" and "--" not in refused.value.message
    with db.transaction() as session:
        assert importers.import_csv(session, "patients", path, allow_duplicates=True) == 2
    assert count(Patient) == 2


def test_large_files_go_in_batches_all_or_nothing(db_url: str, cli, tmp_path: Path) -> None:
    rows = [f"Patient {i:04d},,19{i % 100:02d}-01-01,,,,\n" for i in range(3_000)]
    good = write(tmp_path, "good.csv", PATIENT_HEADER + "".join(rows))
    assert cli("db", "import", "patients", good).out == f"imported 3000 patients from {good}\n"
    assert count(Patient) == 3_000
    # A repeat of row 2 in the third batch is a repeat within the file, although row 2 is inserted by then.
    others = "".join(rows).replace("Patient", "Other")
    late = write(tmp_path, "late.csv", PATIENT_HEADER + others + others.partition("\n")[0] + "\n")
    result = cli("db", "import", "patients", late)
    assert result.code == 2 and "row 3002, column name: probable duplicate of row 2 (" in result.err
    assert "nothing imported, 1 error(s)" in result.err and count(Patient) == 3_000
    bad = write(tmp_path, "bad.csv", PATIENT_HEADER + "".join(f"Robot {i:04d},robot,,,,,\n" for i in range(3_000)))
    result = cli("db", "import", "patients", bad)
    assert result.code == 2 and result.err.count("\n") == 1
    assert "nothing imported, 3000 error(s): row 2, column sex: 'robot'" in result.err
    assert f"; and {3_000 - importers.MAX_LISTED_ERRORS} more" in result.err and "row 22," not in result.err
    assert count(Patient) == 3_000


def test_a_failed_import_leaves_the_callers_transaction_as_it_was(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importers, "BATCH_ROWS", 2)
    path = write(tmp_path, "p.csv", PATIENT_HEADER + "A,,,,,,\nB,,,,,,\nC,,,,,,\nD,robot,,,,,\n")
    with db.transaction() as session:
        intake.add_patient(session, "Kept")
        with pytest.raises(UserError, match="row 5, column sex"):
            importers.import_csv(session, "patients", path)
    with db.transaction() as session:
        assert list(session.scalars(select(Patient.name))) == ["Kept"]


def test_patients_import_with_mrns_refusing_repeats_in_the_file_and_the_database(
    db_url: str, cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("patient", "add", "--name", "Stored", "--mrn", "100", "--mrn-issuer", "HOSP").code == 0
    good = write(tmp_path, "good.csv", "name,mrn,mrn_issuer\nAnn,100,OTHER\nBob,100,\nCyd,,\nDee,,\n")
    assert cli("db", "import", "patients", good).code == 0
    listed = json.loads(cli("patient", "list", "--json").out)
    assert [(p["name"], p["mrn"], p["mrn_issuer"], p["confirmed"]) for p in listed] == [
        ("Stored", "100", "HOSP", True),
        ("Ann", "100", "OTHER", True),
        ("Bob", "100", None, True),
        ("Cyd", None, None, True),
        ("Dee", None, None, True),
    ]
    # Batches of two: row 5 repeats row 2, which an earlier batch has inserted by then.
    monkeypatch.setattr(importers, "BATCH_ROWS", 2)
    rows = "name,mrn,mrn_issuer\nEve,200,H\nFay,100,HOSP\nGus,100,\nHal,200,H\nIda,,HOSP\n"
    refused = cli("db", "import", "patients", write(tmp_path, "bad.csv", rows))
    assert refused.code == 2 and refused.err.count("\n") == 1
    for expected in (
        "nothing imported, 4 error(s)",
        "row 3, column mrn: MRN '100' (issuer 'HOSP') already belongs to patient 1 in the database",
        "row 4, column mrn: MRN '100' (no issuer) already belongs to patient 3 in the database",
        "row 5, column mrn: MRN '200' (issuer 'H') also on row 2",
        "row 6, column mrn_issuer: an issuer needs an MRN in the same row",
    ):
        assert expected in refused.err
    assert count(Patient) == 5
