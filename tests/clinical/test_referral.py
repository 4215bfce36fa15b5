"""Referral ranking: SQL filter, scoring with reasons, stored decisions, on both backends."""

from __future__ import annotations

import json
import math
import random

import pytest
from sqlalchemy import insert, select

from neurotriage.anatomy.location import parse_location
from neurotriage.clinical import db, referral
from neurotriage.clinical.bitsets import EXPERTISE_NAMES, bit
from neurotriage.clinical.decisions import record_diagnosis
from neurotriage.clinical.geo import bounding_box, haversine_km
from neurotriage.clinical.models import CAPABILITIES, CrossCheckRecord, Doctor, Finding, Hospital, ReferralRecord, Study
from neurotriage.clinical.prefilter import EXPERTISE
from neurotriage.clinical.referral import ReferralRequest, needs_for_location, recommend, targets_for_location
from neurotriage.clinical.sample import CITIES, add_hospitals_and_doctors
from neurotriage.clinical.scoring import SPECIALTY_FIT, Candidate, Scorer
from neurotriage.errors import UserError

from .locates import healthy, locate

LEEDS = (53.8008, -1.5491)


def test_haversine_matches_known_distances() -> None:
    assert haversine_km(51.5074, -0.1278, 48.8566, 2.3522) == pytest.approx(343.5, abs=1.0)  # London-Paris
    assert haversine_km(10, 20, 10, 20) == 0


def test_bounding_box_holds_every_point_within_the_radius() -> None:
    rng = random.Random(3)
    for lat, lon in ((53.8, -1.5), (-33.9, 151.2), (78.2, 15.6), (0.0, 179.9)):
        lat_min, lat_max, lon_min, lon_max = bounding_box(lat, lon, 300)
        for _ in range(200):
            bearing, dist = rng.uniform(0, 2 * math.pi), rng.uniform(0, 299)
            plat = lat + dist / 111.2 * math.cos(bearing) * 0.98
            plon = lon + dist / (111.2 * math.cos(math.radians(plat))) * math.sin(bearing) * 0.98
            plon = (plon + 180) % 360 - 180
            if haversine_km(lat, lon, plat, plon) < 300:
                assert lat_min <= plat <= lat_max
                assert lon_min is None or lon_min <= plon <= lon_max


def test_needs_follow_the_location_and_dominance() -> None:
    motor = parse_location(locate("right"))
    assert [n.code for n in needs_for_location(motor, "left")] == ["awake_craniotomy", "neuro_oncology"]
    right_broca = parse_location(locate("right", regions=(("frontal_lobe", 9.0),), eloquent=("broca",), enhancing=0))
    assert needs_for_location(right_broca, "left") == ()  # a non-dominant Broca area is not eloquent
    assert [n.code for n in needs_for_location(right_broca, "right")] == ["awake_craniotomy"]
    stem = parse_location(locate("left", regions=(("brainstem", 5.0),), eloquent=(), enhancing=0))
    assert [n.code for n in needs_for_location(stem, "left")] == ["brainstem_expertise"]


def add_world(cli, tmp_path) -> int:
    """Two hospitals near Leeds (one with awake craniotomy), one in London; a patient in Leeds."""
    hospitals = (
        "code,name,city,lat,lon,capabilities\n"
        "AWAKE,Harebell Infirmary,Leeds,53.80,-1.55,awake_craniotomy;neuro_icu\n"
        "PLAIN,Moonwort Hospital,York,53.96,-1.08,neuro_icu\n"
        "FAR,Pebblemere Institute,London,51.51,-0.13,awake_craniotomy\n"
    )
    doctors = (
        "name,hospital_code,specialty,expertise,accepting,wait_days\n"
        "Dr Best Fit,AWAKE,neurosurgery,frontal_lobe;primary_motor,true,10\n"
        "Dr No Awake,PLAIN,neurosurgery,frontal_lobe;primary_motor,true,10\n"
        "Dr Far Away,FAR,neurosurgery,frontal_lobe;primary_motor,true,10\n"
        "Dr Oncologist,AWAKE,neuro-oncology,frontal_lobe,true,20\n"
        "Dr Not Accepting,AWAKE,neurosurgery,frontal_lobe;primary_motor,false,1\n"
        "Dr Neurologist,AWAKE,neurology,primary_motor,true,5\n"
    )
    (tmp_path / "h.csv").write_text(hospitals)
    (tmp_path / "d.csv").write_text(doctors)
    assert cli("db", "import", "hospitals", tmp_path / "h.csv").code == 0
    assert cli("db", "import", "doctors", tmp_path / "d.csv").code == 0
    added = cli(
        "patient",
        "add",
        "--name",
        "Ada Quillfeather",
        "--city",
        "Leeds",
        "--lat",
        LEEDS[0],
        "--lon",
        LEEDS[1],
        "--json",
    )
    pid = json.loads(added.out)["id"]
    assert cli("symptom", "add", pid, "hemiparesis", "--side", "left").code == 0
    return pid


def names(report: dict) -> list[str]:
    return [r["doctor"]["name"] for r in report["recommendations"]]


def test_imaging_referral_ranks_with_reasons_and_is_stored(db_url: str, cli, tmp_path) -> None:
    pid = add_world(cli, tmp_path)
    done = record_diagnosis(pid, "SYN_0001", parse_location(locate("right")), "unet-test", "/data/seg.nii.gz")
    assert done["crosscheck"]["verdict"] == "concordant"
    report = json.loads(cli("refer", "--patient", pid, "--json").out)
    assert report["basis"] == "imaging" and "right frontal lobe" in report["note"]
    ranked = names(report)
    assert ranked[0] == "Dr Best Fit"
    # The capability the eloquent tumour needs outweighs 220 km of extra distance.
    assert ranked.index("Dr Far Away") < ranked.index("Dr No Awake")
    assert "Dr Not Accepting" not in ranked and "Dr Neurologist" not in ranked
    best = report["recommendations"][0]
    assert "awake craniotomy at the hospital: yes (eloquent cortex)" in best["reasons"]
    assert any(r.startswith("expertise in frontal lobe, primary motor cortex") for r in best["reasons"])
    assert best["distance_km"] < 5 and best["components"]["needs"] == 10.0  # awake yes, neuro-oncology no
    with db.transaction() as session:
        stored = session.get(ReferralRecord, report["referral_id"])
        assert stored.inputs["patient"]["lat"] == LEEDS[0]
        assert {n["code"] for n in stored.inputs["needs"]} == {"awake_craniotomy", "neuro_oncology"}
        check = session.get(CrossCheckRecord, stored.crosscheck_id)
        assert parse_location(check.inputs["locate"]) == parse_location(locate("right"))
        assert check.inputs["rules"]["hemiparesis"][0]["laterality"] == "contralateral"
        finding = session.get(Finding, done["finding_id"])
        assert (finding.model_id, finding.segmentation_path) == ("unet-test", "/data/seg.nii.gz")
    text = cli("refer", "--patient", pid, "--limit", "2").out
    assert "Dr Best Fit" in text and "Research and decision support" in text


def test_without_imaging_ranks_for_predicted_regions_and_says_so(db_url: str, cli, tmp_path) -> None:
    pid = add_world(cli, tmp_path)
    report = json.loads(cli("refer", "--patient", pid, "--json").out)
    assert report["basis"] == "symptoms" and report["crosscheck"] is None
    assert report["note"].startswith("no imaging finding yet: ranked for the regions the symptoms predict")
    assert "right primary motor cortex" in report["note"]
    assert names(report)[0] == "Dr Neurologist"
    homeless = json.loads(cli("patient", "add", "--name", "No Home", "--json").out)["id"]
    report = json.loads(cli("refer", "--patient", homeless, "--json").out)
    assert report["search_radius_km"] is None and report["recommendations"][0]["distance_km"] is None
    assert "no home location recorded: distance not scored" in report["recommendations"][0]["reasons"]


def test_healthy_scan_falls_back_to_symptoms_and_flags_review(db_url: str, cli, tmp_path) -> None:
    pid = add_world(cli, tmp_path)
    done = record_diagnosis(pid, "SYN_0002", parse_location(healthy()), "unet-test")
    assert done["crosscheck"]["verdict"] == "no tumour found despite focal symptoms"
    assert done["referral"]["basis"] == "symptoms" and "found no tumour" in done["referral"]["note"]


def test_search_widens_when_nobody_is_near(db_url: str, cli, tmp_path) -> None:
    pid = add_world(cli, tmp_path)
    far = json.loads(cli("patient", "add", "--name", "Far Patient", "--lat", "40.4", "--lon", "-3.7", "--json").out)
    assert cli("symptom", "add", far["id"], "hemiparesis").code == 0
    report = json.loads(cli("refer", "--patient", far["id"], "--limit", "3", "--json").out)
    assert report["search_radius_km"] == 2500.0 and len(report["recommendations"]) == 3
    everyone = json.loads(cli("refer", "--patient", far["id"], "--limit", "10", "--json").out)
    assert everyone["search_radius_km"] is None and len(everyone["recommendations"]) == 5
    assert pid != far["id"]


def test_search_widens_until_someone_meets_the_needs(db_url: str, cli, tmp_path) -> None:
    add_world(cli, tmp_path)
    patient = json.loads(
        cli("patient", "add", "--name", "Stem Patient", "--lat", LEEDS[0], "--lon", LEEDS[1], "--json").out
    )
    assert cli("symptom", "add", patient["id"], "facial_palsy", "--side", "left").code == 0
    refer = ("refer", "--patient", patient["id"], "--limit", "2", "--json")
    report = json.loads(cli(*refer).out)
    assert [n["code"] for n in report["needs"]] == ["brainstem_expertise"]
    assert report["search_radius_km"] is None  # nobody anywhere lists brainstem expertise
    (tmp_path / "stem.csv").write_text("name,hospital_code,specialty,expertise\nDr Stem,FAR,neurology,brainstem\n")
    assert cli("db", "import", "doctors", tmp_path / "stem.csv").code == 0
    report = json.loads(cli(*refer).out)
    assert report["search_radius_km"] == 400.0  # London, 270 km away, has the expertise
    assert report["recommendations"][0]["doctor"]["name"] == "Dr Stem"


def test_failed_diagnosis_stores_nothing(db_url: str, cli, tmp_path) -> None:
    pid = add_world(cli, tmp_path)
    with pytest.raises(UserError, match="no such patient"):
        record_diagnosis(pid + 1000, "SYN_0003", parse_location(locate("right")), "unet-test")
    with pytest.raises(UserError, match="field volumes_ml"):
        record_diagnosis(pid, "SYN_0003", parse_location({"regions": []}), "unet-test")
    with db.transaction() as session:
        assert session.scalars(select(Study)).all() == [] and session.scalars(select(Finding)).all() == []
        assert session.scalars(select(Hospital)).all() and session.scalars(select(Doctor)).all()


def test_crosscheck_command_stores_and_explains(db_url: str, cli, tmp_path) -> None:
    pid = add_world(cli, tmp_path)
    (tmp_path / "left.json").write_text(json.dumps(locate("left")))
    result = cli("crosscheck", "--patient", pid, "--locate", tmp_path / "left.json", "--json")
    data = json.loads(result.out)
    assert data["verdict"] == "discordant" and data["needs_review"]
    assert "flagged" in cli("crosscheck", "--patient", pid, "--locate", tmp_path / "left.json").out.lower()
    shown = json.loads(cli("patient", "show", pid, "--json").out)
    assert shown["latest_crosscheck"]["verdict"] == "discordant"
    (tmp_path / "bad.json").write_text("{not json")
    bad = cli("crosscheck", "--patient", pid, "--locate", tmp_path / "bad.json")
    assert bad.code == 2 and "not valid JSON" in bad.err


def test_finding_add_command_stores_checks_and_refers(db_url: str, cli, tmp_path) -> None:
    pid = add_world(cli, tmp_path)
    (tmp_path / "loc.json").write_text(json.dumps(locate("right")))
    args = (
        "finding",
        "add",
        "--patient",
        pid,
        "--case",
        "BraTS_001",
        "--locate",
        tmp_path / "loc.json",
        "--model",
        "unet-v1",
        "--limit",
        "3",
    )
    done = json.loads(cli(*args, "--json").out)
    assert done["crosscheck"]["verdict"] == "concordant"
    assert done["referral"]["basis"] == "imaging" and len(done["referral"]["recommendations"]) == 3
    text = cli(*args).out
    assert "stored finding" in text and "concordant" in text and "Dr Best Fit" in text
    studies = json.loads(cli("patient", "show", pid, "--json").out)["studies"]
    assert [s["case"] for s in studies] == ["BraTS_001"]  # the same case reuses its study
    (tmp_path / "bad.json").write_text(json.dumps({"regions": [], "volumes_ml": {"whole_tumour": -1}}))
    bad = cli("finding", "add", "--patient", pid, "--case", "X", "--locate", tmp_path / "bad.json")
    assert bad.code == 2 and "volumes_ml.whole_tumour" in bad.err


def test_symptom_list_shows_codes_and_rules(db_url: str, cli) -> None:
    listed = json.loads(cli("symptom", "list", "--json").out)
    hemiparesis = next(s for s in listed if s["code"] == "hemiparesis")
    assert hemiparesis["snomed_code"] == "20022000"
    assert {r["region"] for r in hemiparesis["rules"]} == {"primary_motor", "corticospinal_tract", "internal_capsule"}
    assert all(r["source"] for s in listed for r in s["rules"])


def _every_candidate_ranked(session, request: ReferralRequest, radius_km) -> list[tuple[int, float]]:
    """The ranking by scoring every candidate of the box in Python: the reference for `recommend`."""
    scorer = Scorer(request.basis, request.targets, request.needs)
    columns = (Doctor.id, Doctor.name, Doctor.hospital_id, Doctor.specialty, Doctor.wait_days, EXPERTISE)
    query = (
        select(*columns)
        .join(Hospital, Hospital.id == Doctor.hospital_id)
        .where(Doctor.specialty.in_(SPECIALTY_FIT[request.basis]), Doctor.accepting.is_(True))
    )
    if request.home and radius_km:
        lat_min, lat_max, lon_min, lon_max = bounding_box(*request.home, radius_km)
        query = query.where(Hospital.lat.between(lat_min, lat_max), Hospital.lon.between(lon_min, lon_max))
    candidates = [Candidate(*row) for row in session.execute(query)]
    sites = referral._sites(session, request, {c.hospital_id for c in candidates})
    scored = [(scorer.components(c, sites[c.hospital_id]), c) for c in candidates]
    scored.sort(key=lambda pc: referral._order(pc, sites))
    return [(c.id, round(sum(parts.values()), 1)) for parts, c in scored[: request.limit]]


def test_reading_best_first_ranks_exactly_as_scoring_every_candidate(db_url: str) -> None:
    rng = random.Random(5)
    with db.transaction() as session:
        add_hospitals_and_doctors(session, 300, 4000, rng, prefix="EQ-H")
        db.refresh_statistics(session)
    homes = [(c[2], c[3]) for c in CITIES[::7]] + [None]
    motor = parse_location(locate("right"))
    stem = parse_location(locate("left", regions=(("brainstem", 5.0),), eloquent=(), enhancing=0))
    requests = [
        ReferralRequest("imaging", targets_for_location(loc), needs_for_location(loc, "left"), home, limit)
        for loc in (motor, stem)
        for home in homes
        for limit in (1, 10, 40)
    ]
    requests += [ReferralRequest("symptoms", (), (), home, 10) for home in homes[:3]]
    with db.transaction() as session:
        for request in requests:
            ranking = recommend(session, request)
            got = [(r.doctor.id, r.score) for r in ranking.recommendations]
            assert got == _every_candidate_ranked(session, request, ranking.search_radius_km), request


def test_a_ranking_of_nobody_is_a_user_error(db_url: str) -> None:
    with db.transaction() as session, pytest.raises(UserError, match="limit 0") as caught:
        recommend(session, ReferralRequest("symptoms", (), (), LEEDS, 0))
    assert caught.value.field == "limit"


def test_expertise_bits_derived_by_the_database_match_each_name(db_url) -> None:
    """The generated column sets exactly the bit the referral query tests, on insert and on update."""
    with db.transaction(db_url) as session:
        hospital = Hospital(code="BITS", name="Bits", city="Leeds", lat=LEEDS[0], lon=LEEDS[1], capabilities=[])
        session.add(hospital)
        session.flush()
        doctors = [
            Doctor(name=f"Dr {name}", hospital_id=hospital.id, specialty="neurosurgery", expertise=[name])
            for name in EXPERTISE_NAMES
        ]
        doctors.append(Doctor(name="Dr Both", hospital_id=hospital.id, specialty="neurology", expertise=[]))
        session.add_all(doctors)
    with db.transaction(db_url) as session:
        bits = dict(session.execute(select(Doctor.name, Doctor.expertise_bits)).all())
        assert [bits[f"Dr {name}"] for name in EXPERTISE_NAMES] == [bit(name) for name in EXPERTISE_NAMES]
        assert bits["Dr Both"] == 0
        both = session.scalar(select(Doctor).where(Doctor.name == "Dr Both"))
        both.expertise = ["corticospinal_tract", "brainstem", "cerebellum"]
    with db.transaction(db_url) as session:
        stored = session.scalar(select(Doctor.expertise_bits).where(Doctor.name == "Dr Both"))
        assert stored == bit("corticospinal_tract") | bit("brainstem") | bit("cerebellum")


def test_doctor_rows_follow_their_hospital_site(db_url) -> None:
    """Triggers copy the hospital's location and capability bits onto its doctors, however they are written."""
    awake = bit("awake_craniotomy", CAPABILITIES)
    with db.transaction(db_url) as session:
        leeds = Hospital(code="L", name="L", city="Leeds", lat=53.8, lon=-1.5, capabilities=["awake_craniotomy"])
        york = Hospital(code="Y", name="Y", city="York", lat=53.96, lon=-1.08, capabilities=[])
        session.add_all([leeds, york])
        session.flush()
        session.add(Doctor(name="Dr Orm", hospital_id=leeds.id, specialty="neurosurgery", expertise=[]))
        session.execute(insert(Doctor), [{"name": "Dr Core", "hospital_id": york.id, "specialty": "neurology"}])
        ids = leeds.id, york.id

    def sites() -> dict[str, tuple]:
        columns = (Doctor.name, Doctor.lat, Doctor.lon, Doctor.lat_band, Doctor.capability_bits)
        with db.transaction(db_url) as session:
            return {name: tuple(site) for name, *site in session.execute(select(*columns))}

    assert sites() == {"Dr Orm": (53.8, -1.5, 53, awake), "Dr Core": (53.96, -1.08, 53, 0)}
    with db.transaction(db_url) as session:
        session.get(Hospital, ids[1]).lat = -0.5  # a band below zero: the floor, not the truncation
        session.get(Hospital, ids[1]).capabilities = ["neuro_icu", "awake_craniotomy"]
        session.scalar(select(Doctor).where(Doctor.name == "Dr Orm")).hospital_id = ids[1]
    moved = (-0.5, -1.08, -1, awake | bit("neuro_icu", CAPABILITIES))
    assert sites() == {"Dr Orm": moved, "Dr Core": moved}
