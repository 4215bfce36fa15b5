"""Patient and symptom intake through the CLI, on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from neurotriage.clinical import db
from neurotriage.clinical.models import PatientSymptom

HOSTILE_NAMES = (
    'O\'Brien "Danny" Boy',
    "Robert'); DROP TABLE patients; --",
    "'; DROP TABLE symptoms; --",
    "Zoë Ångström-Łukasiewicz 李小龍 🧠",
    "100% _under_score\\back",
)


def add_patient(cli, name: str, *extra: str) -> int:
    result = cli("patient", "add", "--name", name, *extra, "--json")
    assert result.code == 0, result.err
    return json.loads(result.out)["id"]


def symptom_rows() -> int:
    with db.transaction() as session:
        return session.scalar(select(func.count()).select_from(PatientSymptom))


def test_add_show_and_list_patients(db_url: str, cli) -> None:
    pid = add_patient(
        cli,
        "Ada Quillfeather",
        "--sex",
        "female",
        "--birth-date",
        "1961-04-02",
        "--city",
        "Leeds",
        "--lat",
        "53.80",
        "--lon",
        "-1.55",
        "--dominance",
        "right",
    )
    shown = json.loads(cli("patient", "show", pid, "--json").out)
    assert shown["name"] == "Ada Quillfeather" and shown["language_dominance"] == "right"
    assert (shown["city"], shown["lat"], shown["lon"]) == ("Leeds", 53.8, -1.55)
    assert shown["birth_date"] == "1961-04-02" and shown["symptoms"] == []
    listed = json.loads(cli("patient", "list", "--json").out)
    assert [(p["id"], p["name"]) for p in listed] == [(pid, "Ada Quillfeather")]
    assert "Ada Quillfeather" in cli("patient", "show", pid).out


def test_symptoms_by_slug_and_snomed_code(db_url: str, cli) -> None:
    pid = add_patient(cli, "Bram Marrowby")
    assert (
        cli(
            "symptom", "add", pid, "hemiparesis", "--side", "left", "--onset", "2024-05-01", "--severity", "moderate"
        ).code
        == 0
    )
    by_code = cli("symptom", "add", pid, "25064002")
    assert by_code.code == 0 and "headache" in by_code.out
    symptoms = json.loads(cli("patient", "show", pid, "--json").out)["symptoms"]
    assert [(s["code"], s["side"], s["snomed_code"]) for s in symptoms] == [
        ("hemiparesis", "left", "20022000"),
        ("headache", None, "25064002"),
    ]
    assert symptoms[0]["onset"] == "2024-05-01" and symptoms[0]["severity"] == "moderate"


def test_a_symptom_recorded_by_mistake_is_removed(db_url: str, cli) -> None:
    pid = add_patient(cli, "Cato Wrongsign")
    for code in ("headache", "aphasia"):
        assert cli("symptom", "add", pid, code).code == 0
    shown = cli("patient", "show", pid).out
    first = json.loads(cli("patient", "show", pid, "--json").out)["symptoms"][0]
    assert f"symptom {first['id']}: headache" in shown
    removed = cli("symptom", "remove", pid, first["id"])
    assert removed.code == 0 and removed.out.startswith(f"removed headache (symptom {first['id']}) from patient {pid}")
    assert [s["code"] for s in json.loads(cli("patient", "show", pid, "--json").out)["symptoms"]] == ["aphasia"]
    again = cli("symptom", "remove", pid, first["id"])
    assert again.code == 2 and again.err.count("\n") == 1
    assert f"symptom {first['id']}: patient {pid} has no such recorded symptom" in again.err
    other = add_patient(cli, "Dora Elsewhere")
    aphasia = json.loads(cli("patient", "show", pid, "--json").out)["symptoms"][0]["id"]
    assert cli("symptom", "remove", other, aphasia).code == 2  # another patient's symptom is not theirs to remove


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("symptom", "add", "999999", "headache"), "patient 999999: no such patient"),
        (("symptom", "add", "{pid}", "limp"), "symptom code 'limp': unknown"),
        (("symptom", "add", "{pid}", "headache", "--side", "left"), "headache takes no side"),
        (("symptom", "add", "{pid}", "hemiparesis", "--side", "up"), "--side: side 'up' is not one of"),
        (
            ("symptom", "add", "{pid}", "hemiparesis", "--onset", "2999-01-01"),
            "--onset: onset date '2999-01-01' is in the future",
        ),
        (("symptom", "add", "{pid}", "hemiparesis", "--onset", "yesterday"), "is not a date"),
        (("patient", "show", "999999"), "no such patient"),
        (("patient", "add", "--name", "  "), "--name: name is empty"),
        (("patient", "add", "--name", "X", "--lat", "50"), "--lon: latitude and longitude must be given together"),
        (("patient", "add", "--name", "X", "--lat", "95", "--lon", "0"), "--lat: latitude '95' is outside -90..90"),
        (("refer", "--patient", "999999"), "--patient: patient 999999: no such patient"),
        (("patient", "add", "--name", "X", "--sex", "robot"), "--sex: sex 'robot' is not one of"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(db_url: str, cli, args: tuple, message: str) -> None:
    pid = add_patient(cli, "Cosima Thistledown")
    before = (symptom_rows(), len(json.loads(cli("patient", "list", "--json").out)))
    result = cli(*(a.format(pid=pid) for a in args))
    assert result.code == 2
    assert message in result.err and result.err.count("\n") == 1
    assert (symptom_rows(), len(json.loads(cli("patient", "list", "--json").out))) == before


def test_hostile_names_are_stored_and_searched_literally(db_url: str, cli) -> None:
    ids = {name: add_patient(cli, name) for name in HOSTILE_NAMES}
    listed = {p["name"]: p["id"] for p in json.loads(cli("patient", "list", "--json").out)}
    assert listed == ids
    for name in HOSTILE_NAMES:
        found = json.loads(cli("patient", "list", "--search", name, "--json").out)
        assert [p["name"] for p in found] == [name]
        assert json.loads(cli("patient", "show", ids[name], "--json").out)["name"] == name
    # LIKE wildcards in the search text match only themselves.
    assert [p["name"] for p in json.loads(cli("patient", "list", "--search", "%", "--json").out)] == [HOSTILE_NAMES[4]]
    assert [p["name"] for p in json.loads(cli("patient", "list", "--search", "_", "--json").out)] == [HOSTILE_NAMES[4]]
    assert json.loads(cli("patient", "list", "--search", "o'brien", "--json").out)[0]["name"] == HOSTILE_NAMES[0]
    assert json.loads(cli("patient", "list", "--search", "nobody", "--json").out) == []
    assert cli("symptom", "list").code == 0  # the symptoms table survived
