"""Every bad input from the foundation issue: one line naming the file, exit 2, no traceback."""

from __future__ import annotations

import gzip
import shutil

import numpy as np

from neurotriage.cli import main
from neurotriage.imaging.io import write_nifti
from neurotriage.imaging.naming import BRATS2020
from neurotriage.imaging.sri24 import BRATS_AFFINE


def run_info(path, capsys) -> str:
    rc = main(["info", str(path)])
    err = capsys.readouterr().err
    assert rc == 2
    assert "Traceback" not in err
    assert err.count("\n") == 1, err
    return err


def _replace(folder, key, data, affine=BRATS_AFFINE):
    path = folder / BRATS2020.filename(folder.name, key)
    write_nifti(data, affine, path)
    return path


def test_missing_sequence(make_case, capsys):
    folder = make_case()
    (folder / "CASE_001_t1ce.nii.gz").unlink()
    assert "missing T1ce sequence" in run_info(folder, capsys)


def test_mismatched_shape(make_case, capsys):
    folder = make_case()
    path = _replace(folder, "t2", np.ones((12, 10, 9), np.int16))
    err = run_info(folder, capsys)
    assert path.name in err and "grid" in err


def test_mismatched_affine(make_case, capsys):
    folder = make_case()
    shifted = BRATS_AFFINE.copy()
    shifted[0, 3] += 5.0
    path = _replace(folder, "t2", np.ones((12, 10, 8), np.int16), shifted)
    assert path.name in run_info(folder, capsys)


def test_truncated_gzip(make_case, capsys):
    folder = make_case()
    path = folder / "CASE_001_flair.nii.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    err = run_info(folder, capsys)
    assert path.name in err and "gzip" in err


def test_corrupt_gzip(make_case, capsys):
    folder = make_case()
    path = folder / "CASE_001_flair.nii.gz"
    data = bytearray(path.read_bytes())
    data[30:60] = b"\x00" * 30
    path.write_bytes(bytes(data))
    assert path.name in run_info(folder, capsys)


def test_not_nifti(make_case, capsys):
    folder = make_case()
    path = folder / "CASE_001_t1.nii.gz"
    with gzip.open(path, "wb") as f:
        f.write(b"this is a text file, not an image\n" * 20)
    err = run_info(folder, capsys)
    assert path.name in err and "NIfTI" in err


def test_nan_voxels(make_case, capsys):
    folder = make_case()
    data = np.ones((12, 10, 8), np.float32)
    data[1, 1, 1] = np.nan
    data[2, 2, 2] = np.inf
    path = _replace(folder, "t1", data)
    err = run_info(folder, capsys)
    assert path.name in err and "NaN or infinite" in err


def test_all_zero_volume(make_case, capsys):
    folder = make_case()
    path = _replace(folder, "flair", np.zeros((12, 10, 8), np.int16))
    err = run_info(folder, capsys)
    assert path.name in err and "all zero" in err


def test_seg_labels_outside_scheme(make_case, capsys):
    folder = make_case()
    seg = np.zeros((12, 10, 8), np.uint8)
    seg[1, 1, 1] = 3  # 3 is not a BraTS 2020 label
    seg[2, 2, 2] = 7
    path = _replace(folder, "seg", seg)
    err = run_info(folder, capsys)
    assert path.name in err and "[3, 7]" in err and "brats2020" in err


def test_2d_image(make_case, capsys):
    folder = make_case()
    path = _replace(folder, "t2", np.ones((12, 10), np.int16))
    err = run_info(folder, capsys)
    assert path.name in err and "3D" in err


def test_empty_folder(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert str(empty) in run_info(empty, capsys)


def test_duplicate_case_ids(make_case, tmp_path, capsys):
    root = tmp_path / "cohort"
    first = make_case("DUP_1", root=root)
    shutil.copytree(first, root / "copy_of_dup")
    err = run_info(root, capsys)
    assert "copy_of_dup" in err and "DUP_1 is already used" in err


def test_folder_of_cases_is_listed(make_case, tmp_path, capsys):
    root = tmp_path / "cohort"
    make_case("C_1", root=root)
    make_case("C_2", root=root)
    assert main(["info", str(root)]) == 0
    out = capsys.readouterr().out
    assert "C_1" in out and "C_2" in out and "2 cases" in out
