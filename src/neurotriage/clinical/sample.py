"""Deterministic, clearly fictional sample data: hospitals at real city coordinates, doctors and
patients with symptoms, each patient linked to a synthetic case (SYN_0000.., seed = case number,
i.e. `neurotriage.imaging.synth.generate_case(seed, "SYN_0000")`).

The people and hospitals are invented; only the city coordinates are real. The synthetic images
themselves are made on first use by `neurotriage diagnose` (diagnosis.cases), not here.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from neurotriage.clinical.intake import find_symptom
from neurotriage.clinical.knowledge import REGIONS
from neurotriage.clinical.models import CAPABILITIES, SPECIALTIES, Doctor, Hospital, Patient, PatientSymptom, Study

SEED = 20240607
SAMPLE_PREFIX = "SAMPLE-H"
N_HOSPITALS, N_DOCTORS = 60, 500
STUDY_BASE_DATE = date(2025, 1, 6)

# (city, country, latitude, longitude): real city-centre coordinates.
CITIES = (
    ("London", "United Kingdom", 51.5074, -0.1278),
    ("Manchester", "United Kingdom", 53.4808, -2.2426),
    ("Birmingham", "United Kingdom", 52.4862, -1.8904),
    ("Leeds", "United Kingdom", 53.8008, -1.5491),
    ("Glasgow", "United Kingdom", 55.8642, -4.2518),
    ("Edinburgh", "United Kingdom", 55.9533, -3.1883),
    ("Liverpool", "United Kingdom", 53.4084, -2.9916),
    ("Bristol", "United Kingdom", 51.4545, -2.5879),
    ("Cardiff", "United Kingdom", 51.4816, -3.1791),
    ("Belfast", "United Kingdom", 54.5973, -5.9301),
    ("Newcastle upon Tyne", "United Kingdom", 54.9783, -1.6178),
    ("Sheffield", "United Kingdom", 53.3811, -1.4701),
    ("Nottingham", "United Kingdom", 52.9548, -1.1581),
    ("Southampton", "United Kingdom", 50.9097, -1.4044),
    ("Oxford", "United Kingdom", 51.7520, -1.2577),
    ("Cambridge", "United Kingdom", 52.2053, 0.1218),
    ("Dublin", "Ireland", 53.3498, -6.2603),
    ("Cork", "Ireland", 51.8985, -8.4756),
    ("Paris", "France", 48.8566, 2.3522),
    ("Lyon", "France", 45.7640, 4.8357),
    ("Marseille", "France", 43.2965, 5.3698),
    ("Toulouse", "France", 43.6047, 1.4442),
    ("Bordeaux", "France", 44.8378, -0.5792),
    ("Lille", "France", 50.6292, 3.0573),
    ("Strasbourg", "France", 48.5734, 7.7521),
    ("Brussels", "Belgium", 50.8503, 4.3517),
    ("Antwerp", "Belgium", 51.2194, 4.4025),
    ("Amsterdam", "Netherlands", 52.3676, 4.9041),
    ("Rotterdam", "Netherlands", 51.9244, 4.4777),
    ("Utrecht", "Netherlands", 52.0907, 5.1214),
    ("Berlin", "Germany", 52.5200, 13.4050),
    ("Hamburg", "Germany", 53.5511, 9.9937),
    ("Munich", "Germany", 48.1351, 11.5820),
    ("Cologne", "Germany", 50.9375, 6.9603),
    ("Frankfurt", "Germany", 50.1109, 8.6821),
    ("Heidelberg", "Germany", 49.3988, 8.6724),
    ("Leipzig", "Germany", 51.3397, 12.3731),
    ("Vienna", "Austria", 48.2082, 16.3738),
    ("Zurich", "Switzerland", 47.3769, 8.5417),
    ("Geneva", "Switzerland", 46.2044, 6.1432),
    ("Milan", "Italy", 45.4642, 9.1900),
    ("Rome", "Italy", 41.9028, 12.4964),
    ("Naples", "Italy", 40.8518, 14.2681),
    ("Turin", "Italy", 45.0703, 7.6869),
    ("Madrid", "Spain", 40.4168, -3.7038),
    ("Barcelona", "Spain", 41.3851, 2.1734),
    ("Valencia", "Spain", 39.4699, -0.3763),
    ("Seville", "Spain", 37.3891, -5.9845),
    ("Lisbon", "Portugal", 38.7223, -9.1393),
    ("Porto", "Portugal", 41.1579, -8.6291),
    ("Copenhagen", "Denmark", 55.6761, 12.5683),
    ("Stockholm", "Sweden", 59.3293, 18.0686),
    ("Gothenburg", "Sweden", 57.7089, 11.9746),
    ("Oslo", "Norway", 59.9139, 10.7522),
    ("Helsinki", "Finland", 60.1699, 24.9384),
    ("Warsaw", "Poland", 52.2297, 21.0122),
    ("Krakow", "Poland", 50.0647, 19.9450),
    ("Prague", "Czechia", 50.0755, 14.4378),
    ("Budapest", "Hungary", 47.4979, 19.0402),
    ("Athens", "Greece", 37.9838, 23.7275),
)

FIRST = (
    "Ada",
    "Bram",
    "Cosima",
    "Dorian",
    "Elowen",
    "Fenn",
    "Greer",
    "Hollis",
    "Isolde",
    "Jory",
    "Kestrel",
    "Linnea",
    "Marlo",
    "Nerys",
    "Orrin",
    "Perpetua",
    "Quill",
    "Rosalind",
    "Soren",
    "Tamsin",
    "Ulric",
    "Verity",
    "Wren",
    "Xanthe",
    "Yorick",
    "Zinnia",
)
# Invented surnames, so no sample person can be mistaken for a real one.
LAST = (
    "Quillfeather",
    "Brackenwold",
    "Marrowby",
    "Thistledown",
    "Pennywhistle",
    "Lanternwick",
    "Mossbury",
    "Ravelstone",
    "Tumblewood",
    "Wrenfield",
    "Candlewick",
    "Hollowmere",
    "Fernsby",
    "Bramblecott",
    "Dewhollow",
    "Kettleburn",
    "Larkwhistle",
    "Nettlecombe",
    "Puddingstone",
    "Gorseworthy",
    "Fiddlecombe",
    "Cobblethorpe",
    "Inkwhistle",
    "Juniperlake",
    "Mistletoft",
)
HOSPITAL_WORDS = (
    "Aldermoor",
    "Bellwether",
    "Copperbeech",
    "Dunmarrow",
    "Elderholt",
    "Foxglove",
    "Glimmerbrook",
    "Harebell",
    "Ivyreach",
    "Lanternhill",
    "Moonwort",
    "Oakhollow",
    "Pebblemere",
    "Quarrybrook",
)
HOSPITAL_KINDS = ("Neurosciences Centre", "Infirmary", "Brain Institute", "General Hospital", "University Hospital")
CAPABILITY_ODDS = {
    "intraoperative_mri": 0.3,
    "awake_craniotomy": 0.4,
    "stereotactic_radiosurgery": 0.4,
    "proton_therapy": 0.1,
    "neuro_icu": 0.7,
}
SPECIALTY_ODDS = (0.35, 0.2, 0.15, 0.2, 0.1)  # in the order of SPECIALTIES

# (symptoms as (code, side), language dominance) per sample patient.
SCENARIOS: tuple[tuple[tuple[tuple[str, str | None], ...], str], ...] = (
    ((("hemiparesis", "left"), ("headache", None)), "left"),
    ((("expressive_aphasia", None), ("hemiparesis", "right")), "left"),
    ((("headache", None), ("vomiting", None), ("papilloedema", None)), "left"),
    ((("homonymous_hemianopia", "left"),), "left"),
    ((("focal_seizure", None), ("personality_change", None)), "left"),
    ((("cerebellar_ataxia", "right"), ("vomiting", None)), "left"),
    ((("memory_impairment", None), ("focal_seizure", None)), "left"),
    ((("neglect", None), ("hemiparesis", "left")), "left"),
    ((("receptive_aphasia", None), ("homonymous_hemianopia", "right")), "left"),
    ((("diplopia", None), ("facial_palsy", "left"), ("dysarthria", None)), "left"),
    ((("apathy", None), ("headache", None)), "left"),
    ((("cortical_sensory_loss", "right"),), "left"),
    ((("seizure", None), ("headache", None)), "left"),
    ((("central_facial_weakness", "left"), ("hemiparesis", "left")), "left"),
    ((("aphasia", None),), "right"),
    ((("ataxia", None), ("nausea", None)), "left"),
    ((("visual_field_defect", None), ("headache", None)), "left"),
    ((("dysphasia", None), ("memory_impairment", None)), "right"),
    ((("sixth_nerve_palsy", None), ("headache", None), ("vomiting", None)), "left"),
    ((("personality_change", None), ("apathy", None), ("focal_seizure", None)), "left"),
)


def person_name(rng: random.Random) -> str:
    """An invented full name."""
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


def _near(rng: random.Random, lat: float, lon: float, spread: float = 0.08) -> tuple[float, float]:
    """A point a few km from a city centre."""
    return round(lat + rng.uniform(-spread, spread), 5), round(lon + rng.uniform(-spread, spread), 5)


def hospital_rows(n: int, rng: random.Random, prefix: str = SAMPLE_PREFIX) -> list[dict[str, Any]]:
    """`n` fictional hospitals spread over the cities in turn."""
    rows = []
    for i in range(n):
        city, country, lat, lon = CITIES[i % len(CITIES)]
        hlat, hlon = _near(rng, lat, lon)
        word, kind = rng.choice(HOSPITAL_WORDS), rng.choice(HOSPITAL_KINDS)
        capabilities = [c for c in CAPABILITIES if rng.random() < CAPABILITY_ODDS[c]]
        rows.append(
            {
                "code": f"{prefix}{i + 1:04d}",
                "name": f"{word} {kind} ({city}, fictional)",
                "address": f"{rng.randint(1, 200)} Fictional Lane",
                "city": city,
                "country": country,
                "lat": hlat,
                "lon": hlon,
                "capabilities": capabilities,
            }
        )
    return rows


def doctor_rows(n: int, hospital_ids: list[int], rng: random.Random) -> list[dict[str, Any]]:
    """`n` fictional doctors at random hospitals, with specialty, expertise, acceptance and wait."""
    rows = []
    for _ in range(n):
        specialty = rng.choices(SPECIALTIES, SPECIALTY_ODDS)[0]
        expertise = rng.sample(REGIONS, rng.randint(1, 4))
        rows.append(
            {
                "name": f"Dr {person_name(rng)}",
                "hospital_id": rng.choice(hospital_ids),
                "specialty": specialty,
                "expertise": sorted(expertise),
                "accepting": rng.random() < 0.8,
                "wait_days": rng.randint(2, 90),
            }
        )
    return rows


def add_hospitals_and_doctors(
    session: Session, n_hospitals: int, n_doctors: int, rng: random.Random, prefix: str = SAMPLE_PREFIX
) -> None:
    """Bulk-insert generated hospitals and doctors (bulk INSERTs, fast enough for the benchmark)."""
    session.execute(insert(Hospital), hospital_rows(n_hospitals, rng, prefix))
    ids = list(session.scalars(select(Hospital.id).where(Hospital.code.startswith(prefix)).order_by(Hospital.id)))
    session.execute(insert(Doctor), doctor_rows(n_doctors, ids, rng))


def _add_patient(session: Session, index: int, rng: random.Random) -> None:
    """One sample patient with a study of synthetic case SYN_<index> and its scenario's symptoms."""
    symptoms, dominance = SCENARIOS[index % len(SCENARIOS)]
    city, _country, lat, lon = rng.choice(CITIES)
    plat, plon = _near(rng, lat, lon, spread=0.3)
    patient = Patient(
        name=person_name(rng),
        sex=rng.choice(("female", "male")),
        city=city,
        lat=plat,
        lon=plon,
        birth_date=date(rng.randint(1940, 2005), rng.randint(1, 12), rng.randint(1, 28)),
        language_dominance=dominance,
    )
    session.add(patient)
    session.flush()
    study_date = STUDY_BASE_DATE + timedelta(days=7 * index)
    session.add(Study(patient_id=patient.id, case_ref=f"SYN_{index:04d}", synthetic_seed=index, study_date=study_date))
    for code, side in symptoms:
        session.add(
            PatientSymptom(
                patient_id=patient.id,
                symptom_id=find_symptom(session, code).id,
                side=side,
                onset_date=study_date - timedelta(days=rng.randint(3, 120)),
                severity=rng.choice(("mild", "moderate", "severe")),
            )
        )


def sample_loaded(session: Session) -> bool:
    """Whether the sample data set is already in the database."""
    return session.scalar(select(Hospital.id).where(Hospital.code == f"{SAMPLE_PREFIX}0001")) is not None


def seed_sample(session: Session, n_patients: int = 20) -> dict[str, int]:
    """Load the sample data set (deterministic); returns what was added."""
    rng = random.Random(SEED)
    add_hospitals_and_doctors(session, N_HOSPITALS, N_DOCTORS, rng)
    for index in range(n_patients):
        _add_patient(session, index, rng)
    session.flush()
    return {"hospitals": N_HOSPITALS, "doctors": N_DOCTORS, "patients": n_patients}
