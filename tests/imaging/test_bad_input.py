"""Every bad input from the foundation issue: one line naming the file, exit 2, no traceback."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import shutil
import subprocess
import sys
import threading

import nibabel as nib
import numpy as np
import pytest

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


# As root, file permissions apply only without these capabilities: setpriv drops them for a child.
DROP_ROOT_OVERRIDE = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search",
                      "--inh-caps", "-dac_override,-dac_read_search"]  # fmt: skip


def run_python_bound_by_permissions(*args: str) -> subprocess.CompletedProcess:
    """Run this Python with `args` in a child that file permissions bind, even when the tests run as root."""
    prefix = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("as root, permissions bind only a child started by setpriv (util-linux), not installed")
        prefix = DROP_ROOT_OVERRIDE
    return subprocess.run([*prefix, sys.executable, *args], capture_output=True, text=True, timeout=120)


def run_info_bound_by_permissions(path) -> str:
    done = run_python_bound_by_permissions("-m", "neurotriage", "info", str(path))
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    return done.stderr


@pytest.fixture
def no_access():
    """chmod paths to 000, restoring their modes afterwards (so the temporary folders can be removed)."""
    modes = {}

    def _lock(path):
        modes[path] = path.stat().st_mode
        path.chmod(0)
        return path

    yield _lock
    for path, mode in modes.items():
        path.chmod(mode)


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


def test_unreadable_sequence_is_permission_denied(make_case, no_access):
    folder = make_case()
    path = no_access(folder / "CASE_001_flair.nii.gz")
    err = run_info_bound_by_permissions(folder)
    assert f"{path}: permission denied" in err


def test_unreadable_case_folder_is_one_line(make_case, no_access):
    folder = no_access(make_case())
    assert f"{folder}: permission denied" in run_info_bound_by_permissions(folder)


def test_unreadable_folder_in_a_cohort_is_recorded_and_the_rest_found(make_case, tmp_path, no_access):
    root = tmp_path / "cohort"
    make_case("C_1", root=root)
    locked = no_access(make_case("C_2", root=root))
    code = (
        "import json, sys; from neurotriage.imaging.io import discover_cases; failed = {}; "
        "print(json.dumps([[c.case_id for c in discover_cases(sys.argv[1], failed)], failed]))"
    )
    done = run_python_bound_by_permissions("-c", code, str(root))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [["C_1"], {"C_2": f"{locked}: permission denied"}]


def _fifo_unblocker(fifo) -> threading.Timer:
    """After 10 s, let a reader that wrongly opened the FIFO see end-of-file, so the test fails, not hangs."""

    def _open_for_writing():
        with contextlib.suppress(OSError):  # no reader: nothing is blocked
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))

    timer = threading.Timer(10, _open_for_writing)
    timer.start()
    return timer


@pytest.mark.parametrize(
    ("replace", "message"),
    [
        (lambda path: path.mkdir(), "is a folder, not a NIfTI file"),
        (os.mkfifo, "is a FIFO (named pipe), not a NIfTI file"),
        (lambda path: path.symlink_to(path.parent / "gone.nii.gz"), "dangling symbolic link (its target"),
    ],
    ids=["folder", "fifo", "dangling-link"],
)
def test_sequence_that_is_not_a_file_says_what_it_is(make_case, capsys, replace, message):
    folder = make_case()
    path = folder / "CASE_001_t2.nii.gz"
    path.unlink()
    replace(path)
    timer = _fifo_unblocker(path)
    try:
        err = run_info(folder, capsys)
    finally:
        timer.cancel()
    assert f"{path}: {message}" in err


def _write_with_header_affine(path, affine) -> None:
    """Write a volume whose header (sform) holds `affine` as is: nibabel refuses to derive a header from a bad one."""
    img = nib.Nifti1Image(np.ones((12, 10, 8), np.int16), None)
    img.header.set_sform(affine, code=1)
    nib.save(img, str(path))


def _scaled(column: int, factor: float) -> np.ndarray:
    affine = BRATS_AFFINE.copy()
    affine[:3, column] *= factor
    return affine


def _rotated(degrees: float) -> np.ndarray:
    t = np.radians(degrees)
    rotation = np.array([[np.cos(t), -np.sin(t), 0, 0], [np.sin(t), np.cos(t), 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])
    return BRATS_AFFINE @ rotation


@pytest.mark.parametrize(
    ("affine", "message"),
    [
        (_scaled(2, 0.0), "degenerate affine in the header (a voxel size of 0 mm)"),
        (_scaled(1, np.nan), "degenerate affine in the header (NaN or infinite values)"),
        (BRATS_AFFINE[:, [0, 0, 2, 3]], "degenerate affine in the header (voxel axes that are not independent)"),
        (_rotated(10), "oblique orientation (voxel axes tilted 10.00° from the world axes); a BraTS case must be"),
        (_rotated(0.5), "oblique orientation (voxel axes tilted 0.50°"),
    ],
    ids=["zero-scale", "nan", "parallel-axes", "oblique", "slightly-oblique"],
)
def test_bad_affine_is_refused_at_load_naming_the_file(make_case, capsys, affine, message):
    folder = make_case()
    path = folder / "CASE_001_t1.nii.gz"
    _write_with_header_affine(path, affine)
    assert f"{path}: {message}" in run_info(folder, capsys)
