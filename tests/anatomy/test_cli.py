"""`neurotriage locate`: JSON and text output, exit codes, and no torch on the way."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from neurotriage import NOTICE
from neurotriage.cli import main
from neurotriage.imaging.io import write_nifti
from neurotriage.imaging.naming import BRATS2020, from_internal
from neurotriage.imaging.sri24 import BRATS_AFFINE, GRID_SHAPE


@pytest.fixture(scope="module")
def seg_file(tmp_path_factory, right_frontal):
    path = tmp_path_factory.mktemp("locate") / "case_seg.nii.gz"
    return write_nifti(from_internal(right_frontal, BRATS2020), BRATS_AFFINE, path)


def test_json_output(seg_file, capsys):
    assert main(["locate", str(seg_file), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["source"] == str(seg_file)
    assert (result["hemisphere"], result["primary_region"]) == ("right", "frontal_lobe")
    keys = {"regions", "crosses_midline", "volumes_ml", "centroid_mm", "n_components", "touches_ventricles"}
    assert keys | {"cortical_involvement", "eloquent", "vasari", "summary", "notice"} <= result.keys()
    assert result["vasari"]["F2"] == {"name": "side of tumour epicentre", "code": 1, "value": "right"}


def test_text_output_is_one_summary(seg_file, capsys):
    assert main(["locate", str(seg_file)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Right frontal lobe, ") and lines[0].endswith(".")
    assert lines[1:] == [NOTICE]


def test_healthy_text(tmp_path, capsys):
    path = write_nifti(np.zeros(GRID_SHAPE, np.uint8), BRATS_AFFINE, tmp_path / "healthy_seg.nii.gz")
    assert main(["locate", str(path)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "No tumour found."


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: write_nifti(np.zeros((240, 240, 154), np.uint8), BRATS_AFFINE, p), "not on the SRI24 1 mm"),
        (lambda p: write_nifti(np.full(GRID_SHAPE, 7, np.uint8), BRATS_AFFINE, p), "outside the brats2023 scheme"),
        (lambda p: write_nifti(np.full(GRID_SHAPE, 0.5, np.float32), BRATS_AFFINE, p), "non-integer"),
        (lambda p: p.write_bytes(b"not a nifti at all"), "not a NIfTI file|cannot be read"),
        (lambda p: None, "cannot be read|No such file"),
    ],
    ids=["off-grid", "bad-labels", "float-labels", "not-nifti", "missing"],
)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, make, message):
    path = tmp_path / "bad_seg.nii.gz"
    make(path)
    assert main(["locate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("neurotriage: error: ")
    assert str(path) in err
    assert any(m in err for m in message.split("|"))


def test_cross_ml_must_be_positive(seg_file, capsys):
    assert main(["locate", str(seg_file), "--cross-ml", "0"]) == 2
    assert "--cross-ml" in capsys.readouterr().err


def test_cli_path_imports_no_torch(seg_file):
    code = (
        "import sys; from neurotriage.cli import main; main(['locate', sys.argv[1]]);"
        "heavy = {m.split('.')[0] for m in sys.modules} & {'torch', 'monai', 'SimpleITK', 'sqlalchemy'};"
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(seg_file)], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[-1] == "[]"


def test_an_image_given_as_label_map_gets_a_short_line(tmp_path, capsys):
    image = np.arange(240 * 240 * 155, dtype=np.int16).reshape(240, 240, 155) % 900  # 0..899: 896 outside 0, 1, 2, 4
    path = write_nifti(image, BRATS_AFFINE, tmp_path / "t1.nii.gz")
    assert main(["locate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "(896 values)" in err and "image rather than a label map" in err
    assert len(err) < 300
