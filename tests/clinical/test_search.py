"""Patient search by id, birth date, name (ignoring case and accents), city and MRN, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from neurotriage.clinical import intake
from neurotriage.clinical.db import transaction


@pytest.fixture
def people(db_url: str) -> dict[str, int]:
    """Four patients: name -> id."""
    with transaction(db_url) as session:
        rows = [
            intake.add_patient(session, "Zoë Adams", birth_date="1970-02-03", city="Leeds", lat="53.8", lon="-1.55"),
            intake.add_patient(session, "ZOE BRANDT", birth_date="1981-11-30", mrn="MRN-4711"),
            intake.add_patient(session, "Renée Côté-Núñez", city="Kraków", lat="50.06", lon="19.94"),
            intake.add_patient(session, "Ann 100% Real", birth_date="1970-02-04"),
        ]
        return {p.name: p.id for p in rows}


def found(db_url: str, search: str | None) -> set[str]:
    with transaction(db_url) as session:
        return {p.name for p in intake.list_patients(session, search)}


@pytest.mark.parametrize("search", ["ZOË", "zoe", "Zoe", "zoë", " zoe "])
def test_names_match_ignoring_case_and_accents(db_url, people, search):
    assert found(db_url, search) == {"Zoë Adams", "ZOE BRANDT"}


def test_a_part_of_the_name_with_other_accents(db_url, people):
    assert found(db_url, "renee cote") == found(db_url, "CÔTÉ-NÚÑEZ") == {"Renée Côté-Núñez"}
    assert found(db_url, "oe a") == {"Zoë Adams"}


def test_birth_date_finds_exactly_that_day(db_url, people):
    assert found(db_url, "1970-02-03") == {"Zoë Adams"}
    assert found(db_url, "1970-02-31") == set()  # not a date: no birth date, and no name holds it


def test_an_id_with_or_without_hash(db_url, people):
    pid = people["Renée Côté-Núñez"]
    assert found(db_url, str(pid)) == found(db_url, f"#{pid}") == {"Renée Côté-Núñez"}
    assert found(db_url, "#99999999999") == set()  # beyond any row id: no match, no database error


def test_city_and_mrn_as_before(db_url, people):
    assert found(db_url, "LEEDS") == {"Zoë Adams"}
    assert found(db_url, "mrn-47") == {"ZOE BRANDT"}


def test_wildcards_are_literal(db_url, people):
    assert found(db_url, "100%") == {"Ann 100% Real"}
    assert found(db_url, "%") == {"Ann 100% Real"}
    assert found(db_url, "_") == set()


def test_no_search_lists_everyone_by_id(db_url, people):
    with transaction(db_url) as session:
        assert [p.id for p in intake.list_patients(session, None)] == sorted(people.values())
        assert [p.id for p in intake.list_patients(session, "  ")] == sorted(people.values())
