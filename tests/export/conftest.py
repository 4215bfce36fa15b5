"""A diagnosed cohort to export, on SQLite and on PostgreSQL: two studies of one patient and one of
another, whose case folders, file names and NIfTI headers carry the patients' identities.

The network is replaced by the oracle of tests/conftest.py (each case's reference labels).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import nibabel as nib
import pytest

from neurotriage.clinical import db, intake
from neurotriage.diagnosis.pipeline import DiagnoseOptions, diagnose
from neurotriage.imaging.io import find_case
from neurotriage.imaging.naming import BRATS2020
from neurotriage.imaging.synth import generate_case, write_case
from neurotriage.web.reviews import add_review, check_review

from ..clinical.conftest import db_factory, postgres_url  # noqa: F401
from ..conftest import OracleConfig, OracleModel


@dataclass(frozen=True)
class Person:
    """A patient as entered, with the free text a clinician wrote about them."""

    name: str
    sex: str
    birth_date: str
    city: str
    mrn: str
    symptom: tuple[str, str | None, str]  # code, side, onset
    comment: str


# Zoë lives in Sunderland, which the knowledge base's literature references name too ("Sunderland, MA").
ZOE = Person("Zoë Ångström", "female", "1961-03-07", "Sunderland", "MRN-40213", ("hemiparesis", "left", "2023-12-20"),
             "Spoke to Zoë's daughter in Sunderland about the scan")  # fmt: skip
JOHN = Person("John O'Hara", "male", "1950-12-30", "Knaresborough", "77123-B", ("headache", None, "2023-04-01"),
              "Mr O'Hara prefers morning appointments")  # fmt: skip
# Each study: whose, its case folder (named as converters and clinics often name them), its date.
STUDIES = (
    (ZOE, "Angstrom_Zoe_first", date(2024, 1, 10)),
    (ZOE, "Angstrom_Zoe_second", date(2024, 7, 1)),
    (JOHN, "OHara_John_1950", date(2023, 5, 5)),
)


@dataclass(frozen=True)
class Cohort:
    """The diagnosed cohort: database, home, patient ids by person, and each study's case folder."""

    url: str
    home: Path
    ids: dict[str, int]
    cases: dict[str, Path]

    def id_of(self, person: Person) -> int:
        """The database id of a person."""
        return self.ids[person.name]


@pytest.fixture(scope="session")
def synthetic_case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A full-size synthetic right frontal enhancing tumour."""
    case = generate_case(11, "SYN_RF", kind="enhancing", lobe="frontal_lobe", hemisphere="right")
    return write_case(case, tmp_path_factory.mktemp("synthetic"), BRATS2020)


def identified_copy(source: Path, folder: Path, person: Person) -> Path:
    """The case under `folder`'s name, every header carrying the person's identities, as scanners write them."""
    folder.mkdir(parents=True)
    files = find_case(source)
    for key, path in [*files.images.items(), ("seg", files.seg)]:
        img = nib.load(path)
        img.header["descrip"] = f"{person.name} {person.birth_date}".encode()
        img.header["aux_file"] = person.mrn.encode()
        img.header["intent_name"] = person.city.encode()[:16]
        img.header.extensions.append(nib.nifti1.Nifti1Extension("comment", f"{person.name}, {person.city}".encode()))
        nib.save(img, folder / BRATS2020.filename(folder.name, key))
    return folder


def _add_person(url: str, person: Person) -> int:
    with db.transaction(url) as session:
        patient = intake.add_patient(session, person.name, person.sex, person.birth_date, person.city, mrn=person.mrn)
        code, side, onset = person.symptom
        intake.add_symptom(session, patient.id, code, side=side, onset=onset)
        return patient.id


def _diagnose(url: str, patient_id: int, case: Path, day: date, comment: str) -> None:
    with db.transaction(url) as session:
        intake.study_for(session, patient_id, str(case), study_date=day)
    result = diagnose(case, patient_id, DiagnoseOptions(url=url), case_ref=str(case))
    with db.transaction(url) as session:
        add_review(session, result["finding_id"], None, check_review("confirm", "", "confirm", "", comment))


@pytest.fixture(scope="module")
def cohort(db_factory, synthetic_case: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cohort]:  # noqa: F811
    """The cohort diagnosed once per backend; NEUROTRIAGE_HOME and the database are the cohort's meanwhile."""
    root = tmp_path_factory.mktemp("cohort")
    oracle = OracleModel(root / "oracle.pt", OracleConfig(), "0" * 64)
    with pytest.MonkeyPatch.context() as mp:
        url = db_factory.create()
        mp.setenv("NEUROTRIAGE_HOME", str(root / "home"))
        mp.setenv("NEUROTRIAGE_DATABASE_URL", url)
        mp.setattr("neurotriage.segmentation.infer.load_model", lambda _path=None: oracle)
        db.migrate_and_load(url, create=True)
        ids = {person.name: _add_person(url, person) for person in (ZOE, JOHN)}
        cases = {}
        for person, name, day in STUDIES:
            cases[name] = identified_copy(synthetic_case, root / "incoming" / name, person)
            _diagnose(url, ids[person.name], cases[name], day, person.comment)
        yield Cohort(url, root / "home", ids, cases)
    shutil.rmtree(root, ignore_errors=True)
