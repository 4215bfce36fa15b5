"""Warm referral latency at 10,000 and 100,000 doctors (and as many patients), on SQLite and PostgreSQL.

Times the library call `decisions.refer` (load patient, symptoms and latest finding, cross-check,
SQL-filtered candidate query, ranking, storing both decisions, commit) in its own transaction, as
the CLI and web app make it, plus the ranking step `referral.recommend` alone. Half of the
patients have an imaging finding, half are ranked from their symptoms. PostgreSQL uses
NEUROTRIAGE_BENCH_DATABASE_URL or NEUROTRIAGE_TEST_DATABASE_URL, in a throw-away schema; without
a reachable server it is skipped with a note. Target: p95 <= 20 ms at both sizes.
"""

from __future__ import annotations

import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from tqdm import tqdm

from bench.databases import DatabaseFactory, scratch_database
from neurotriage.anatomy.location import parse_location
from neurotriage.clinical import db, decisions, intake
from neurotriage.clinical.models import Patient
from neurotriage.clinical.referral import ReferralRequest, needs_for_location, recommend, targets_for_location
from neurotriage.clinical.sample import CITIES, add_hospitals_and_doctors

# (hospitals, doctors, patients): the patients beyond the eight timed ones fill the tables only.
SCALES = {"10k doctors": (1_000, 10_000, 10_000), "100k doctors": (10_000, 100_000, 100_000)}
WARMUP, CALLS = 20, 300
TARGET_P95_MS = 20.0
PATIENT_CITIES = ("London", "Lyon", "Berlin", "Madrid", "Leeds", "Milan", "Warsaw", "Dublin")
LOCATE = {
    "hemisphere": "right",
    "primary_region": "frontal_lobe",
    "regions": [
        {"name": "frontal_lobe", "side": "right", "ml": 26.0, "fraction_of_tumour": 0.87},
        {"name": "primary_motor", "side": "right", "ml": 3.0, "fraction_of_tumour": 0.1},
    ],
    "volumes_ml": {"whole_tumour": 30.0, "tumour_core": 8.0, "enhancing": 4.0, "necrosis": 2.0, "edema": 22.0},
    "eloquent": [{"name": "primary_motor", "side": "right"}],
    "cortical_involvement": True,
}


CENTRES = {c[0]: (c[2], c[3]) for c in CITIES}


def _filler_patients(n: int, rng: random.Random) -> list[dict[str, Any]]:
    """Patients in the cities, without symptoms: they only make the tables as large as a hospital's."""
    rows = []
    for i in range(n):
        city, _country, lat, lon = CITIES[i % len(CITIES)]
        rows.append({"name": f"Filler Patient {i}", "city": city, "lat": lat + rng.uniform(-0.3, 0.3), "lon": lon})
    return rows


def _populate(url: str, scale: tuple[int, int, int]) -> list[int]:
    """Migrate, load hospitals, doctors and patients at `scale`; returns the timed patients' ids."""
    n_hospitals, n_doctors, n_patients = scale
    db.migrate_and_load(url, create=True)
    with db.transaction(url) as session:
        rng = random.Random(11)
        add_hospitals_and_doctors(session, n_hospitals, n_doctors, rng, prefix="BENCH-H")
        session.execute(insert(Patient), _filler_patients(n_patients - len(PATIENT_CITIES), rng))
        db.refresh_statistics(session)  # as `db seed` / `db import` do after a bulk load
        ids = []
        for city in PATIENT_CITIES:
            lat, lon = CENTRES[city]
            patient = intake.add_patient(session, f"Bench Patient {city}", city=city, lat=str(lat), lon=str(lon))
            intake.add_symptom(session, patient.id, "hemiparesis", side="left")
            intake.add_symptom(session, patient.id, "headache")
            ids.append(patient.id)
    for pid in ids[::2]:
        decisions.record_diagnosis(pid, "BENCH_CASE", parse_location(LOCATE), "bench", url=url)
    _vacuum(url)
    return ids


def _vacuum(url: str) -> None:
    """On PostgreSQL, VACUUM as autovacuum would after a bulk load: index-only scans need the pages
    marked all-visible, which a freshly loaded table is not (SQLite needs nothing of the kind)."""
    if make_url(url).get_backend_name() != "postgresql":
        return
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text("VACUUM ANALYZE"))
    finally:
        engine.dispose()


def _percentiles(samples_s: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in samples_s)
    return {
        "p50_ms": round(statistics.median(ms), 2),
        "p95_ms": round(ms[int(0.95 * (len(ms) - 1))], 2),
        "max_ms": round(ms[-1], 2),
    }


def _time(label: str, call: Callable[[int], Any], ids: list[int]) -> dict[str, float]:
    """Warm up, then time CALLS calls cycling over the patients."""
    for i in range(WARMUP):
        call(ids[i % len(ids)])
    samples = []
    for i in tqdm(range(CALLS), desc=label, leave=False, disable=None):
        start = time.perf_counter()
        call(ids[i % len(ids)])
        samples.append(time.perf_counter() - start)
    return _percentiles(samples)


def _measure(url: str, label: str, scale: tuple[int, int, int]) -> dict[str, Any]:
    ids = _populate(url, scale)

    def full(pid: int) -> None:
        with db.transaction(url) as session:
            decisions.refer(session, pid, 10)

    location = parse_location(LOCATE)
    targets, needs = targets_for_location(location), needs_for_location(location, "left")
    requests = {
        pid: ReferralRequest("imaging", targets, needs, CENTRES[city], 10)
        for pid, city in zip(ids, PATIENT_CITIES, strict=True)
    }
    with db.transaction(url) as session:
        candidates = [recommend(session, r).candidates for r in requests.values()]
        ranking = _time(f"{label} recommend", lambda pid: recommend(session, requests[pid]), ids)
    refer = _time(f"{label} refer", full, ids)
    return {
        "refer": refer,
        "recommend_only": ranking,
        "candidates_after_sql_filter": {"min": min(candidates), "max": max(candidates)},
        "meets_target": refer["p95_ms"] <= TARGET_P95_MS,
    }


def _sqlite(label: str, scale: tuple[int, int, int]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, scratch_database("sqlite", Path(tmp)) as url:
        return _measure(url, f"sqlite {label}", scale)


def _postgres(label: str, scale: tuple[int, int, int]) -> dict[str, Any]:
    admin = os.environ.get("NEUROTRIAGE_BENCH_DATABASE_URL") or os.environ.get("NEUROTRIAGE_TEST_DATABASE_URL")
    if not admin:
        return {"skipped": "no NEUROTRIAGE_BENCH_DATABASE_URL / NEUROTRIAGE_TEST_DATABASE_URL set"}
    databases = DatabaseFactory("postgresql", Path(tempfile.gettempdir()), admin, prefix="nt_bench")
    try:
        url = databases.create()
    except OperationalError as exc:  # no server to measure
        return {"skipped": f"PostgreSQL at {db.redact(admin)} unreachable: {str(exc).splitlines()[0]}"}
    try:
        return _measure(url, f"postgresql {label}", scale)
    finally:
        databases.drop_all()


def run() -> dict:
    """Referral p95 on both backends at each scale (limit 10)."""
    result: dict[str, Any] = {"calls": CALLS, "target_p95_ms": TARGET_P95_MS}
    for label, scale in SCALES.items():
        hospitals, doctors, patients = scale
        result[label] = {"hospitals": hospitals, "doctors": doctors, "patients": patients}
        for backend, measure in (("sqlite", _sqlite), ("postgresql", _postgres)):
            data = result[label][backend] = measure(label, scale)
            summary = data.get("skipped") or f"refer p95 {data['refer']['p95_ms']} ms"
            print(f"bench_referral {label} {backend}: {summary}")
    return result
