"""The identifier check of an export: folded matching, NIfTI headers and gzip fields (no database)."""

from __future__ import annotations

import gzip
from datetime import date
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from neurotriage.export.nifti import write_scrubbed
from neurotriage.export.plan import PatientRecord
from neurotriage.export.scan import Hit, find_identifiers, found_in, identifiers

ZOE = PatientRecord(1, "Zoë Ångström", date(1961, 3, 7), "MRN-40213", "Harrogate", "female", "left")


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("ZOE_ANGSTROM_flair.nii.gz", "name"),
        ("ÅNGSTRÖM^ZOË", "name"),
        ("angstrom, zoe", "name"),
        ("ZoeAngstrom 2024", "name"),
        ("OHara_John_1950", None),  # another patient's name
        ("born 19610307", "birth date"),
        ("dob: 07/03/1961", "birth date"),
        ("1961-03-07 00:00", "birth date"),
        ("03/07/1961", "birth date"),
        ("mrn 40214", None),
        ("sha256 a40213f", None),
        ("MRN-40213", "MRN"),
        ("mrn_40213", "MRN"),
        ("HARROGATE", "city"),
        ("Zoe Angstromsson", None),  # whole words only
        ("Zoë", None),  # a given name alone is not the name
        ("07/03/1962", None),
    ],
)
def test_identifiers_are_found_folded_and_as_whole_words(text, kind):
    assert found_in(text, identifiers(ZOE)) == kind


@pytest.mark.parametrize("text", ["OHara_John", "john o'hara", "O'HARA^JOHN", "ohara, john", "JohnOHara"])
def test_a_name_of_several_words_is_found_however_they_are_joined(text):
    john = PatientRecord(2, "John O'Hara", None, None, None, "male", "left")
    assert found_in(text, identifiers(john)) == "name"


def test_bytes_are_read_as_utf8_and_as_latin1():
    assert found_in("Ångström Zoë".encode(), identifiers(ZOE)) == "name"
    assert found_in("Ångström Zoë".encode("latin-1"), identifiers(ZOE)) == "name"


def nifti(path: Path, descrip: str = "", extension: str | None = None) -> Path:
    img = nib.Nifti1Image(np.arange(24, dtype=np.int16).reshape(2, 3, 4), np.diag([-1.0, -1.0, 1.0, 1.0]))
    img.header["descrip"] = descrip.encode("utf-8")[:80]
    img.header.set_slope_inter(2.0, 1.0)
    if extension:
        img.header.extensions.append(nib.nifti1.Nifti1Extension("comment", extension.encode()))
    nib.save(img, path)
    return path


def test_nifti_headers_extensions_and_gzip_names_are_checked_but_not_voxels(tmp_path):
    nifti(tmp_path / "clean.nii.gz")
    assert find_identifiers(tmp_path, [ZOE]) is None
    nifti(tmp_path / "b.nii.gz", descrip="Zoë Ångström")
    assert find_identifiers(tmp_path, [ZOE]) == Hit("b.nii.gz", "name")
    (tmp_path / "b.nii.gz").unlink()
    nifti(tmp_path / "c.nii", extension="lives in Harrogate")
    assert find_identifiers(tmp_path, [ZOE]) == Hit("c.nii", "city")
    (tmp_path / "c.nii").unlink()
    with open(tmp_path / "d.nii.gz", "wb") as raw, gzip.GzipFile("Angstrom_Zoe.nii", "wb", fileobj=raw) as out:
        out.write(gzip.decompress((tmp_path / "clean.nii.gz").read_bytes()))
    assert find_identifiers(tmp_path, [ZOE]) == Hit("d.nii.gz", "name")


def test_file_names_and_text_files_are_checked(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "report.json").write_text('{"city": "harrogate"}')
    assert find_identifiers(tmp_path, [ZOE]) == Hit("sub/report.json", "city")
    (tmp_path / "sub" / "report.json").unlink()
    (tmp_path / "sub" / "Angstrom Zoe").mkdir()
    assert find_identifiers(tmp_path, [ZOE]) == Hit("sub/Angstrom Zoe", "name")


def test_a_scrubbed_nifti_keeps_voxels_scaling_and_affine(tmp_path):
    source = nifti(tmp_path / "in.nii", descrip="Zoë Ångström 1961-03-07", extension="Harrogate")
    write_scrubbed(source, tmp_path / "out.nii.gz")
    before, after = nib.load(source), nib.load(tmp_path / "out.nii.gz")
    assert np.array_equal(np.asanyarray(after.dataobj), np.asanyarray(before.dataobj))
    assert np.array_equal(after.affine, before.affine) and (after.dataobj.slope, after.dataobj.inter) == (2.0, 1.0)
    assert after.header["descrip"].item() == b"" and len(after.header.extensions) == 0
    assert find_identifiers(tmp_path, [ZOE]) == Hit("in.nii", "name")  # the source, not the copy
    source.unlink()
    assert find_identifiers(tmp_path, [ZOE]) is None
