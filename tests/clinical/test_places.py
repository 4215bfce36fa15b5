"""Offline geocoding of home towns, and partial patient edits."""

from __future__ import annotations

import pytest

from neurotriage.clinical import intake
from neurotriage.clinical.db import transaction
from neurotriage.clinical.geo import haversine_km
from neurotriage.clinical.models import Hospital
from neurotriage.clinical.places import geocode
from neurotriage.errors import UserError
from neurotriage.folding import fold

LEEDS = (53.8008, -1.5491)


def test_a_bare_city_name_finds_its_town():
    place = geocode("Leeds")
    assert (place.name, place.country_code) == ("Leeds", "GB")
    assert haversine_km(place.lat, place.lon, *LEEDS) < 5


@pytest.mark.parametrize("typed", ["koln", "KÖLN", "Cologne", "Köln, DE", "koln, germany"])
def test_case_accents_exonyms_and_countries_are_understood(typed):
    assert geocode(typed).name == "Köln"


def test_a_shared_name_is_ambiguous_until_the_country_or_the_hospitals_tell():
    with pytest.raises(UserError, match=r"Birmingham.*towns have that name.*'Birmingham, GB'") as err:
        geocode("Birmingham")
    assert err.value.field == "city"
    assert geocode("Birmingham, GB").country_code == "GB"
    assert geocode("Birmingham", hospital_countries=["United Kingdom", "Ireland"]).country_code == "GB"
    with pytest.raises(UserError, match=r"towns have that name \(Birmingham, AL, US; Birmingham, MI, US.*\); give lat"):
        geocode("Birmingham, US")


def test_an_unknown_town_names_the_field():
    with pytest.raises(UserError, match="city 'Atlantis-upon-Sea': no town") as err:
        geocode("Atlantis-upon-Sea")
    assert err.value.field == "city"


def test_fold_ignores_case_accents_and_spacing():
    assert fold("  ZOË   Smith ") == "zoe smith"
    assert fold("Łukasz Søren Straße Æsir") == "lukasz soren strasse aesir"


@pytest.fixture
def db_url(tmp_path):
    from neurotriage.clinical import db

    url = f"sqlite:///{tmp_path / 'p.db'}"
    db.migrate_and_load(url, create=True)
    return url


def test_a_patient_typed_with_a_city_only_gets_its_coordinates(db_url):
    with transaction(db_url) as session:
        session.add(
            Hospital(code="LGI", name="Leeds General", city="Leeds", country="United Kingdom", lat=53.80, lon=-1.55)
        )
        session.add(
            Hospital(
                code="QE", name="Queen Elizabeth", city="Birmingham", country="United Kingdom", lat=52.45, lon=-1.94
            )
        )
        patient = intake.add_patient(session, "Ada Leeds", city="Leeds")
        birmingham = intake.add_patient(session, "Bea Brum", city="Birmingham")
    assert haversine_km(patient.lat, patient.lon, *LEEDS) < 5
    assert birmingham.lat == pytest.approx(52.48, abs=0.05)


def test_an_edit_changes_only_the_fields_it_gives(db_url):
    with transaction(db_url) as session:
        pid = intake.add_patient(
            session, "Zoë Adams", birth_date="1970-02-03", city="Leeds", lat="53.8", lon="-1.55"
        ).id
    with transaction(db_url) as session:
        patient, changed = intake.update_patient(session, pid, sex="female")
        assert changed == {"sex": "female"}
        assert (patient.name, str(patient.birth_date), patient.city, patient.lat) == (
            "Zoë Adams",
            "1970-02-03",
            "Leeds",
            53.8,
        )
    with transaction(db_url) as session:
        patient, changed = intake.update_patient(session, pid, city="York, GB")
        assert set(changed) == {"city", "lat", "lon"} and patient.lat == pytest.approx(53.96, abs=0.05)
        patient, changed = intake.update_patient(session, pid, birth_date=None)
        assert changed == {"birth_date": None} and patient.city == "York, GB"
        with pytest.raises(UserError, match="colour: not a patient field"):
            intake.update_patient(session, pid, colour="blue")
