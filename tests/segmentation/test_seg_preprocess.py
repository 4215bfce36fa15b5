"""Recipes: scaling, crops and the classic inclusion rule; `prepare`: caching, re-runs, bad cases."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest

from neurotriage.cli import main
from neurotriage.errors import UserError
from neurotriage.imaging.io import load_case
from neurotriage.segmentation.prepare import prepare_dataset, read_meta
from neurotriage.segmentation.preprocess import (
    RECIPES,
    bounding_box,
    brain_mask,
    centred_box,
    crop,
    prepare_inference,
    prepare_training,
)


def test_bounding_box_and_centred_box_stay_inside():
    mask = np.zeros((20, 30, 10), bool)
    mask[3:7, 10:25, 2:9] = True
    assert bounding_box(mask) == ((3, 7), (10, 25), (2, 9))
    assert centred_box(((3, 7), (10, 25), (2, 9)), 8, (20, 30, 10)) == ((1, 9), (13, 21), (1, 9))
    # A box larger than the volume is centred on the volume and padded by `crop`.
    box = centred_box(((0, 20), (0, 30), (0, 10)), 16, (20, 30, 10))
    assert box[2] == (-3, 13)
    out = crop(np.ones((2, 20, 30, 10)), box)
    assert out.shape == (2, 16, 16, 16)
    assert out[..., :3].sum() == 0 and out[..., 13:].sum() == 0 and out[..., 3:13].min() == 1


def test_standard_recipe_zscores_inside_brain_and_crops_to_it(tiny_cohort):
    case = load_case(tiny_cohort / "TINY_000")
    prepared = prepare_training(case, RECIPES["standard"])
    mask = brain_mask(case)
    box = bounding_box(mask)
    assert prepared.box == box
    assert prepared.image.shape == (4, *(b - a for a, b in box))
    inside = crop(mask, box)
    for channel in prepared.image:
        assert abs(channel[inside].mean()) < 1e-4 and abs(channel[inside].std() - 1) < 1e-4
        assert not channel[~inside].any()
    assert np.array_equal(prepared.seg, crop(case.seg, box))
    # Inference sees the same scaling on the same box.
    assert np.allclose(prepare_inference(case, RECIPES["standard"]).image, prepared.image)


def test_classic_recipe_three_channels_minmax_128_crop(tiny_cohort):
    case = load_case(tiny_cohort / "TINY_001")
    prepared = prepare_training(case, RECIPES["classic"])
    assert prepared.image.shape == (3, 128, 128, 128)
    assert prepared.image.min() == 0.0 and np.isclose(prepared.image.max(), 1.0)
    assert set(np.unique(prepared.seg)) <= {0, 1, 2, 3}  # enhancing is 3 inside the project
    # The tiny tumour is well under 1 % of a 128³ crop: `prepare` must exclude such cases.
    assert prepared.tumour_fraction < 0.01


def test_zero_variance_sequence_is_a_user_error(tiny_cohort):
    case = load_case(tiny_cohort / "TINY_002")
    case.images["t2"] = np.where(case.images["t2"] != 0, 5.0, 0.0).astype(np.float32)
    with pytest.raises(UserError, match=r"t2.*standard deviation is 0"):
        prepare_training(case, RECIPES["standard"])


def test_prepare_caches_reruns_and_survives_bad_cases(tiny_cohort, tmp_path, capsys):
    src = tmp_path / "src"
    shutil.copytree(tiny_cohort, src)
    corrupt = src / "TINY_003" / "TINY_003_t1.nii.gz"
    corrupt.write_bytes(corrupt.read_bytes()[:200])  # truncated gzip
    (src / "TINY_002" / "TINY_002_t2.nii.gz").unlink()  # a case folder missing a sequence
    out = tmp_path / "prep"
    report = prepare_dataset(src, out, RECIPES["standard"], workers=2, progress=False)
    assert sorted(report.prepared) == ["TINY_000", "TINY_001"]
    assert set(report.failed) == {"TINY_002", "TINY_003"}
    assert "truncated" in report.failed["TINY_003"] and "missing T2" in report.failed["TINY_002"]
    with np.load(out / "TINY_000.npz") as npz:
        assert npz["image"].dtype == np.float16 and npz["seg"].dtype == np.uint8
    assert read_meta(out / "TINY_000.npz")["grid"]["axcodes"] == ["L", "P", "S"]
    manifest = json.loads((out / "dataset.json").read_text())
    assert sorted(manifest["cases"]) == ["TINY_000", "TINY_001"]
    # A re-run skips finished cases and retries the failed ones once they are fixed.
    shutil.copytree(tiny_cohort / "TINY_003", src / "TINY_003", dirs_exist_ok=True)
    assert main(["prepare", str(src), str(out), "--workers", "1"]) == 0
    printed = capsys.readouterr()
    assert "1 prepared, 2 already done" in printed.out and "skipped TINY_002" in printed.err


def test_prepare_classic_excludes_small_tumours_and_refuses_mixed_recipes(tiny_cohort, tmp_path):
    out = tmp_path / "classic"
    report = prepare_dataset(tiny_cohort, out, RECIPES["classic"], workers=1, progress=False)
    assert not report.prepared and len(report.excluded) == 4
    assert "of the crop (< 1%)" in report.excluded["TINY_000"]
    # Exclusions are remembered in dataset.json, not recomputed on a re-run.
    manifest_path = out / "dataset.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["excluded"]["TINY_000"] = "remembered"
    manifest_path.write_text(json.dumps(manifest))
    again = prepare_dataset(tiny_cohort, out, RECIPES["classic"], workers=1, progress=False)
    assert again.excluded["TINY_000"] == "remembered" and not again.prepared
    with pytest.raises(UserError, match="already holds a 'classic' preparation"):
        prepare_dataset(tiny_cohort, out, RECIPES["standard"], workers=1, progress=False)


def test_classic_recipe_keeps_cases_with_enough_tumour(tiny_cohort, tmp_path):
    small_crop = replace(RECIPES["classic"], crop_size=32)  # the tiny tumours are > 1 % of 32³
    report = prepare_dataset(tiny_cohort, tmp_path / "kept", small_crop, workers=1, progress=False)
    assert len(report.prepared) == 4
    with np.load(tmp_path / "kept" / "TINY_000.npz") as npz:
        assert npz["image"].shape == (3, 32, 32, 32) and npz["seg"].any()
