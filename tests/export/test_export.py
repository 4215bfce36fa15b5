"""`neurotriage export --pseudonymise`: the layout, what the table and reports hold, that no identifier
leaves, stable keyed pseudonyms, kept intervals, a subset of patients, and the refusals.

The cohort (conftest.py) is diagnosed once per backend; every export here reads it.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import re
from datetime import date
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from neurotriage.export.run import export_pseudonymised
from neurotriage.imaging.io import discover_cases, find_case
from neurotriage.imaging.naming import SEQUENCES

from ..clinical.conftest import cli  # noqa: F401
from .conftest import JOHN, STUDIES, ZOE, Cohort, Person

pytestmark = pytest.mark.slow  # the cohort: three full-size studies diagnosed per backend
REPORT_KEYS = {"notice", "patient", "case_id", "symptoms", "locate", "crosscheck", "uncertainty", "provenance", "files"}


@pytest.fixture(scope="module")
def export(cohort: Cohort, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole cohort exported once, under a key of the module's own."""
    root = tmp_path_factory.mktemp("export")
    export_pseudonymised(root / "out", key_file=root / "key", url=cohort.url)
    return root / "out"


def rows(out: Path) -> list[dict[str, str]]:
    with open(out / "findings.csv", encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def report(out: Path, case_id: str) -> dict:
    return json.loads((out / "cases" / case_id / "report.json").read_text(encoding="utf-8"))


def every_byte(out: Path) -> list[tuple[Path, bytes]]:
    """Each file's bytes, and for a gzip file its decompressed bytes too, in lower case (ASCII letters)."""
    found = []
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        found.append((path, path.read_bytes().lower()))
        if path.name.endswith(".gz"):
            found.append((path, gzip.decompress(path.read_bytes()).lower()))
    return found


def encodings(value: str) -> set[bytes]:
    """The text in lower and upper case, as UTF-8 and as Latin-1, lowered as `every_byte` lowers."""
    return {v.encode(e, errors="ignore").lower() for v in (value, value.upper()) for e in ("utf-8", "latin-1")}


def spellings(person: Person, case_names: list[str]) -> list[str]:
    """How the person's identities could be written: as entered, unaccented, as dates are written, as folders."""
    year, month, day = person.birth_date.split("-")
    plain = person.name.replace("ë", "e").replace("Å", "A").replace("ö", "o")
    family = plain.split()[-1]
    texts = [person.name, plain, plain.upper(), family, person.mrn, person.city, person.comment]
    texts += [person.birth_date, f"{year}{month}{day}", f"{day}/{month}/{year}", *case_names]
    return texts


def test_layout_cases_and_images(cohort: Cohort, export: Path):
    cases = {case.case_id: case for case in discover_cases(export / "cases")}
    table = rows(export)
    assert sorted(cases) == sorted(row["study"] for row in table) and len(cases) == 3
    source = find_case(next(iter(cohort.cases.values())))
    for case in cases.values():
        assert case.seg is not None and set(case.images) == set(SEQUENCES)
        for key in SEQUENCES:
            exported, original = nib.load(case.images[key]), nib.load(source.images[key])
            assert np.array_equal(np.asanyarray(exported.dataobj), np.asanyarray(original.dataobj))
            assert np.allclose(exported.affine, original.affine)
            header = exported.header
            assert [header[f].item() for f in ("descrip", "aux_file", "intent_name")] == [b"", b"", b""]
            assert len(header.extensions) == 0
        labels = np.unique(np.asanyarray(nib.load(case.seg).dataobj))
        assert set(labels.tolist()) == {0, 1, 2, 4}  # BraTS 2020 naming: enhancing written as 4
    assert os.stat(export).st_mode & 0o077 == 0  # the export is its owner's until shared


def test_table_holds_pseudonyms_codes_and_findings(cohort: Cohort, export: Path):
    table = rows(export)
    zoe = [row for row in table if row["symptoms"] == "hemiparesis:left"]
    john = [row for row in table if row["symptoms"] == "headache"]
    assert len(zoe) == 2 and len(john) == 1
    assert zoe[0]["patient"] == zoe[1]["patient"] != john[0]["patient"]
    assert zoe[0]["symptoms_snomed"] == "20022000:left" and john[0]["symptoms_snomed"] == "25064002"
    assert {row["crosscheck_verdict"] for row in zoe} == {"concordant"}
    for row in table:
        assert row["hemisphere"] == "right" and row["primary_region"] == "frontal_lobe"
        assert "frontal_lobe:right" in row["lobes"].split(";") and row["crosses_midline"] == "false"
        assert float(row["whole_tumour_ml"]) > float(row["tumour_core_ml"]) > 0
        assert row["vasari_F1"] == "1" and row["vasari_F2"] == "1"  # frontal, right
        assert row["model_id"] == "oracle-test"
    assert {(row["sex"], row["age_at_study"]) for row in table} == {("female", "62"), ("female", "63"), ("male", "72")}


def test_reports_are_rebuilt_without_identities(export: Path):
    for row in rows(export):
        data = report(export, row["study"])
        assert set(data) == REPORT_KEYS
        assert data["case_id"] == row["study"] and data["patient"]["id"] == row["patient"]
        assert set(data["patient"]) == {"id", "sex", "language_dominance", "age_at_study"}
        provenance = data["provenance"]
        assert set(provenance) == {"software_version", "model_id", "model_sha256", "tta", "postprocess", "models"}
        assert [model["model_id"] for model in provenance["models"]] == ["oracle-test"]
        assert all(set(model) == {"model_id", "sha256"} for model in provenance["models"])
        assert data["uncertainty"]["total_ml"] == 0 and "map" not in data["uncertainty"]  # the oracle is certain
        assert data["locate"]["primary_region"] == "frontal_lobe" and data["crosscheck"]["verdict"]
        assert sorted(data["files"]) == sorted(p.name for p in (export / "cases" / row["study"]).glob("*.nii.gz"))


def test_no_identifier_appears_anywhere(cohort: Cohort, export: Path):
    names = list(cohort.cases)
    wanted = spellings(ZOE, names) + spellings(JOHN, names) + [str(cohort.home), "referrals", "finding_key"]
    pattern = re.compile(b"|".join(re.escape(needle) for value in wanted for needle in encodings(value)))
    for path, data in every_byte(export):
        relative = path.relative_to(export).as_posix()
        found = pattern.search(data)
        assert found is None, f"{relative} holds {found.group()!r}"
        assert not [value for value in wanted if value.casefold() in relative.casefold()]


def person_of(row: dict[str, str]) -> Person:
    return ZOE if row["symptoms"] == "hemiparesis:left" else JOHN


def test_dates_are_shifted_per_patient_and_intervals_kept(export: Path):
    table = sorted(rows(export), key=lambda row: row["study_date"])
    for person in (ZOE, JOHN):
        shifted = [date.fromisoformat(row["study_date"]) for row in table if person_of(row) is person]
        real = sorted(day for who, _, day in STUDIES if who is person)
        offsets = {(moved - day).days for moved, day in zip(shifted, real, strict=True)}
        assert len(offsets) == 1, "one offset for all of a patient's studies keeps their intervals"
        offset = offsets.pop()
        assert offset != 0 and abs(offset) <= 365
        for row in (row for row in table if person_of(row) is person):  # the symptom onset moved with them
            onset = report(export, row["study"])["symptoms"][0]["onset"]
            assert (date.fromisoformat(onset) - date.fromisoformat(person.symptom[2])).days == offset


def test_pseudonyms_are_stable_under_one_key_and_differ_under_another(cohort, export, cli, tmp_path):  # noqa: F811
    key = export.parent / "key"
    again, other = tmp_path / "again", tmp_path / "other"
    john = str(cohort.id_of(JOHN))
    assert cli("export", "--pseudonymise", again, "--patients", john, "--key-file", key).code == 0
    assert cli("export", "--pseudonymise", other, "--patients", john, "--key-file", tmp_path / "k2").code == 0
    first = next(row for row in rows(export) if row["symptoms"] == "headache")
    (same,), (different,) = rows(again), rows(other)
    assert (same["patient"], same["study"], same["study_date"]) == (
        first["patient"],
        first["study"],
        first["study_date"],
    )
    assert different["patient"] != first["patient"] and different["study"] != first["study"]
    assert (
        json.loads((again / "manifest.json").read_text())["key_id"]
        == json.loads((export / "manifest.json").read_text())["key_id"]
    )


def test_a_subset_of_patients_with_progress_and_a_summary_line(cohort: Cohort, cli, tmp_path):  # noqa: F811
    out, key = tmp_path / "subset", tmp_path / "secret" / "key"
    key.parent.mkdir()
    run = cli("export", "--pseudonymise", out, "--patients", cohort.id_of(ZOE), "--key-file", key)
    assert run.code == 0, run.err
    assert run.out.count("\n") == 1 and run.out.startswith("exported 2 studies of 1 patient (")
    assert str(key) in run.out and "2/2" in run.err  # the progress bar reached the end
    assert len(rows(out)) == 2 and len(list((out / "cases").iterdir())) == 2
    assert os.stat(key).st_mode & 0o777 == 0o600
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["studies"] == 2 and "findings.csv" in manifest["files"]


def test_the_default_key_lives_in_the_home(cohort: Cohort, cli, tmp_path):  # noqa: F811
    run = cli("export", "--pseudonymise", tmp_path / "out", "--patients", cohort.id_of(JOHN))
    assert run.code == 0, run.err
    assert (cohort.home / "export-key").is_file() and str(cohort.home / "export-key") in run.out


def refused(cli, *args) -> str:  # noqa: F811
    """Run an export that must be refused: exit 2, one line, no traceback; returns the line."""
    run = cli("export", *args)
    assert run.code == 2 and run.out == "" and run.err.count("\n") == 1 and "Traceback" not in run.err, run.err
    return run.err


def test_refusals(cohort: Cohort, cli, tmp_path):  # noqa: F811
    key, out = tmp_path / "key", tmp_path / "out"
    assert "only a pseudonymised export" in refused(cli, out)
    assert "no such patient" in refused(cli, "--pseudonymise", out, "--patients", "99999", "--key-file", key)
    assert not out.exists() and not key.exists()  # nothing written, not even a key
    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_text("mine")
    assert "not empty" in refused(cli, "--pseudonymise", full, "--key-file", key)
    assert (full / "notes.txt").read_text() == "mine"
    assert "is not a folder" in refused(cli, "--pseudonymise", full / "notes.txt", "--key-file", key)
    assert "parent folder does not exist" in refused(cli, "--pseudonymise", tmp_path / "a" / "b", "--key-file", key)
    empty = tmp_path / "empty"
    empty.mkdir()
    line = refused(cli, "--pseudonymise", empty, "--key-file", empty / "key")
    assert line.startswith("neurotriage: error: --key-file:") and "outside the export" in line
    key.write_text("00" * 32)
    key.chmod(0o644)
    assert "chmod 600" in refused(cli, "--pseudonymise", out, "--key-file", key)
    key.chmod(0o600)
    key.write_text("not a key")
    assert "not an export key" in refused(cli, "--pseudonymise", out, "--key-file", key)
    assert not out.exists() and list(empty.iterdir()) == []
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_an_export_holding_an_identifier_is_removed(cohort: Cohort, cli, tmp_path, monkeypatch):  # noqa: F811
    # A header field left unscrubbed: the check finds John's name in the header and nothing is kept.
    monkeypatch.setattr("neurotriage.export.nifti.TEXT_FIELDS", ("aux_file",))
    line = refused(
        cli, "--pseudonymise", tmp_path / "out", "--patients", cohort.id_of(JOHN), "--key-file", tmp_path / "k"
    )
    assert "_flair.nii.gz: holds an exported patient's name; the export was removed" in line
    assert "Hara" not in line and not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["k"]
