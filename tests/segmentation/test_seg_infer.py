"""Inference: aligned output in the input's naming, folder mode, precision/TTA/tiling, one-line errors."""

from __future__ import annotations

from dataclasses import replace

import nibabel as nib
import numpy as np
import pytest
import torch

from neurotriage.cli import main
from neurotriage.errors import UserError
from neurotriage.imaging.io import load_case
from neurotriage.imaging.naming import BRATS2023
from neurotriage.segmentation import infer
from neurotriage.segmentation.checkpoint import read_checkpoint, save_checkpoint
from neurotriage.segmentation.postprocess import DEFAULT_POST, DEFAULT_TTA, PostProcess


@pytest.fixture(scope="module")
def model(tiny_run):
    return infer.load_model(tiny_run / "best.pt")


def _agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float((a == b).mean())


def test_segment_writes_an_aligned_nifti_in_the_input_naming(tiny_cohort, tiny_run, model, tmp_path, capsys):
    case_dir = tiny_cohort / "TINY_003"
    out = tmp_path / "pred.nii.gz"
    # Without flip averaging: the barely trained tiny model's few enhancing voxels do not survive it.
    assert main(["segment", str(case_dir), "--model", str(tiny_run), "--out", str(out), "--no-tta"]) == 0
    assert "TINY_003: wrote" in capsys.readouterr().out
    written = nib.load(out)
    source = nib.load(case_dir / "TINY_003_flair.nii.gz")
    assert written.shape == source.shape and np.allclose(written.affine, source.affine)
    assert nib.aff2axcodes(written.affine) == ("L", "P", "S")
    assert np.allclose(written.header.get_zooms(), source.header.get_zooms())
    assert written.get_data_dtype() == np.uint8
    values = np.asarray(written.dataobj)
    assert set(np.unique(values)) <= {0, 1, 2, 4} and 4 in values  # BraTS 2020: enhancing written as 4
    expected = model.predict(load_case(case_dir), tta=False)
    assert np.array_equal(values, np.where(expected == 3, 4, expected))


def test_the_models_saved_settings_apply_unless_overridden(tiny_cohort, tiny_run, tmp_path):
    payload = read_checkpoint(tiny_run / "best.pt")
    saved = PostProcess(min_component_ml=1e6)  # drops every tumour
    config = payload["config"].model_copy(update={"postprocess": saved, "tta": False})
    path = save_checkpoint(tmp_path / "tuned.pt", config, payload["state_dict"])
    tuned = infer.load_model(path)
    assert tuned.config.postprocess == saved and tuned.config.tta is False
    case_dir = tiny_cohort / "TINY_003"
    case = load_case(case_dir)
    assert not tuned.predict(case).any()
    keep_all = replace(saved, min_component_ml=0)
    kept = tuned.predict(case, post=keep_all)
    # Flip averaging changes this case, so equality with tta=False shows the saved setting was used.
    assert np.array_equal(kept, tuned.predict(case, tta=False, post=keep_all))
    assert not np.array_equal(kept, tuned.predict(case, tta=True, post=keep_all))
    # The CLI: flags left unset take the model's settings, given ones override them one by one.
    out = tmp_path / "seg.nii.gz"
    assert main(["segment", str(case_dir), "--model", str(path), "--out", str(out)]) == 0
    assert not np.asarray(nib.load(out).dataobj).any()
    assert main(["segment", str(case_dir), "--model", str(path), "--out", str(out), "--min-component-ml", "0"]) == 0
    assert np.array_equal(np.asarray(nib.load(out).dataobj), np.where(kept == 3, 4, kept))


def test_a_checkpoint_saved_without_post_processing_gets_the_defaults(tiny_run, tmp_path):
    payload = torch.load(tiny_run / "best.pt", weights_only=True)
    for key in ("postprocess", "tta", "loss", "model_id", "neurotriage_version"):
        payload["config"].pop(key, None)
    torch.save(payload, tmp_path / "older.pt")
    config = infer.load_model(tmp_path / "older.pt").config
    assert config.postprocess == DEFAULT_POST and config.tta is DEFAULT_TTA and config.model_id is None


@pytest.mark.parametrize(
    ("edit", "field", "message"),
    [
        (lambda c: c.pop("grid"), "config.grid", "checkpoint config.grid: missing"),
        (lambda c: c.update(arch="vnet"), "config.arch", "unknown architecture 'vnet'"),
        (lambda c: c.update(channels=["flair", "flair"]), "config.channels", "not distinct BraTS sequences"),
        (lambda c: c["grid"].update(shape="big"), "config.grid.shape", "config.grid.shape: Input should be"),
    ],
    ids=["missing", "arch", "channels", "grid-shape"],
)
def test_a_bad_checkpoint_config_names_its_field(tiny_run, tmp_path, edit, field, message):
    payload = torch.load(tiny_run / "best.pt", weights_only=True)
    edit(payload["config"])
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(UserError, match=message) as caught:
        read_checkpoint(tmp_path / "bad.pt")
    assert caught.value.field == field and str(tmp_path / "bad.pt") in str(caught.value)


def test_segment_folder_mode_names_outputs_per_naming(tiny_run, blob_case, tmp_path, capsys):
    cohort = tmp_path / "cases"
    blob_case(cohort, "OLD_001", seed=10)
    blob_case(cohort, "NEW-001", seed=11, naming=BRATS2023)
    blob_case(cohort, "WIDE_001", seed=12, shape=(40, 44, 38))  # off the model's grid: reported, not fatal
    (cohort / "NOT_A_CASE").mkdir()
    (cohort / "NOT_A_CASE" / "scan.nii.gz").write_bytes(b"")  # not a BraTS file name: reported, not fatal
    out = tmp_path / "out"
    assert main(["segment", str(cohort), "--model", str(tiny_run / "last.pt"), "--out", str(out)]) == 1
    written = sorted(p.name for p in out.iterdir())
    assert written == [
        "NEW-001-seg.nii.gz",
        "NEW-001-uncertainty.nii.gz",
        "OLD_001_seg.nii.gz",
        "OLD_001_uncertainty.nii.gz",
    ]
    printed = capsys.readouterr()
    assert "WIDE_001" in printed.err and "NOT_A_CASE" in printed.err
    assert "segmented 2 of 4 cases, 2 failed" in printed.out
    new = np.asarray(nib.load(out / "NEW-001-seg.nii.gz").dataobj)
    assert set(np.unique(new)) <= {0, 1, 2, 3}  # BraTS 2023: enhancing stays 3


def _make_singular(path) -> None:
    """Give a NIfTI file a header affine with a zero-length voxel axis (nibabel would refuse to derive one)."""
    img = nib.load(path)
    affine = img.affine.copy()
    affine[:3, 2] = 0
    header = img.header.copy()
    header.set_sform(affine, code=1)
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj), None, header), path)


def test_segment_folder_goes_on_past_bad_cases_and_lists_them(tiny_run, blob_case, tmp_path, capsys):
    cohort = tmp_path / "cases"
    blob_case(cohort, "GOOD_001", seed=10)
    flat = blob_case(cohort, "FLAT_001", seed=11)
    for path in flat.glob("*.nii.gz"):
        _make_singular(path)
    dangling = blob_case(cohort, "LINK_001", seed=12) / "LINK_001_t1.nii.gz"
    dangling.unlink()
    dangling.symlink_to(tmp_path / "moved_away.nii.gz")
    out = tmp_path / "out"
    assert main(["segment", str(cohort), "--model", str(tiny_run / "last.pt"), "--out", str(out)]) == 1
    assert sorted(p.name for p in out.iterdir()) == ["GOOD_001_seg.nii.gz", "GOOD_001_uncertainty.nii.gz"]
    printed = capsys.readouterr()
    assert "segmented 1 of 3 cases, 2 failed" in printed.out
    summary = printed.err.splitlines()[-2:]
    flair = flat / "FLAT_001_flair.nii.gz"
    assert summary[0] == f"  failed FLAT_001: {flair}: degenerate affine in the header (a voxel size of 0 mm)"
    assert summary[1].startswith(f"  failed LINK_001: {dangling}: dangling symbolic link")


def test_segment_folder_is_sharded_across_torchrun_ranks(tiny_cohort, tiny_run, tmp_path, monkeypatch, capsys):
    # What torchrun sets for the second of two processes (one machine, so threads stay shared).
    for name, value in {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "1"}.items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "out"
    assert main(["segment", str(tiny_cohort), "--model", str(tiny_run), "--out", str(out)]) == 0
    cases = ("TINY_001", "TINY_003")
    assert sorted(p.name for p in out.iterdir()) == [
        f"{c}_{kind}.nii.gz" for c in cases for kind in ("seg", "uncertainty")
    ]
    assert "rank 1/2: segmented 2 of 2 cases" in capsys.readouterr().out


def test_bf16_tta_tiling_and_half_weights_agree_with_fp32(model, tiny_cohort, tiny_run, tmp_path, monkeypatch):
    case = load_case(tiny_cohort / "TINY_002")
    # The network's agreement, without ring completion: grown from a slightly different ring, a
    # barely trained model's enhancement can differ by more than the network's output does.
    post = PostProcess(ring_growth_mm=0, enclosed_core_mm=0)
    reference = model.predict(case, precision="fp32", post=post)
    assert reference.any()
    assert _agreement(model.predict(case, precision="bf16", post=post), reference) > 0.99
    assert _agreement(model.predict(case, tta=True, precision="fp32", post=post), reference) > 0.95
    payload = read_checkpoint(tiny_run / "best.pt")
    half = {k: v.half() if v.is_floating_point() else v for k, v in payload["state_dict"].items()}
    save_checkpoint(tmp_path / "half.pt", payload["config"], half)
    half_model = infer.load_model(tmp_path / "half.pt")
    assert _agreement(half_model.predict(case, precision="fp32", post=post), reference) > 0.99
    monkeypatch.setattr(infer, "MAX_WHOLE_VOXELS", 1)  # force overlapping windows of the training ROI
    assert _agreement(model.predict(case, precision="fp32", post=post), reference) > 0.95


def _edited_checkpoint(tiny_run, tmp_path, edit) -> str:
    payload = torch.load(tiny_run / "best.pt", weights_only=True)
    edit(payload)
    path = tmp_path / "edited.pt"
    torch.save(payload, path)
    return str(path)


def _drop_channel(payload: dict) -> None:
    payload["config"]["channels"] = ["flair", "t1ce", "t2"]


def _break_weights(payload: dict) -> None:
    key = next(k for k, v in payload["state_dict"].items() if v.ndim == 5)
    payload["state_dict"][key] = payload["state_dict"][key][:, :, :1]


@pytest.mark.parametrize(
    ("make_model", "message"),
    [
        (lambda run, tmp: str(tmp / "missing.pt"), "model checkpoint not found"),
        (lambda run, tmp: _write(tmp / "junk.pt", b"not a checkpoint"), "not a readable checkpoint"),
        (lambda run, tmp: _write(tmp / "cut.pt", (run / "best.pt").read_bytes()[:5000]), "not a readable checkpoint"),
        (lambda run, tmp: _torch_file(tmp / "other.pt", {"weights": torch.zeros(2)}), "not a neurotriage"),
        (lambda run, tmp: _edited_checkpoint(run, tmp, _drop_channel), "wrong channel count"),
        (lambda run, tmp: _edited_checkpoint(run, tmp, _break_weights), "weights do not fit"),
    ],
    ids=["missing", "junk", "truncated", "foreign", "channels", "weights"],
)
def test_bad_models_are_one_line_errors(make_model, message, tiny_cohort, tiny_run, tmp_path, capsys):
    model_path = make_model(tiny_run, tmp_path)
    out = tmp_path / "seg.nii.gz"
    assert main(["segment", str(tiny_cohort / "TINY_000"), "--model", model_path, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not out.exists()


def _write(path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def _torch_file(path, payload) -> str:
    torch.save(payload, path)
    return str(path)


def test_case_off_the_model_grid_is_refused(tiny_run, blob_case, tmp_path, capsys):
    case_dir = blob_case(tmp_path, "WIDE_001", seed=1, shape=(40, 44, 38))
    out = tmp_path / "seg.nii.gz"
    assert main(["segment", str(case_dir), "--model", str(tiny_run), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "40×44×38 at 1×1×1 mm (LPS) is not the model's grid 40×44×36" in err


def test_no_model_and_no_packaged_default_is_a_user_error(monkeypatch):
    monkeypatch.setattr(infer, "default_model_path", lambda: None)
    monkeypatch.setattr(infer, "default_scripted_path", lambda: None)
    with pytest.raises(UserError, match="no default model is installed"):
        infer.load_model(None)


def test_segment_refuses_a_non_nifti_output_name(tiny_cohort, tiny_run, tmp_path, capsys):
    args = ["segment", str(tiny_cohort / "TINY_000"), "--model", str(tiny_run), "--out", str(tmp_path / "x.png")]
    assert main(args) == 2
    assert ".nii.gz" in capsys.readouterr().err


def _torchscript_file(path, network, config_text):
    import torch

    torch.jit.save(torch.jit.script(network), str(path), _extra_files={"config.json": config_text})
    return path


@pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:DeprecationWarning")
@pytest.mark.parametrize(
    ("channels_in", "config_text", "message"),
    [
        (4, "{not json", "config is not valid JSON"),
        (4, '{"arch": "nonesuch"}', "checkpoint config."),
        (2, None, "wrong channel count: the network takes 2 input channels"),
    ],
)
def test_a_broken_torchscript_model_is_one_user_error(tmp_path, channels_in, config_text, message):
    import json

    import torch

    from neurotriage.segmentation.shipped import default_scripted_path

    shipped = infer.load_model(default_scripted_path())
    text = config_text or json.dumps(shipped.config.to_payload())
    path = _torchscript_file(tmp_path / "bad.ts", torch.nn.Conv3d(channels_in, 4, 3), text)
    with pytest.raises(UserError, match=message) as caught:
        infer.load_model(path)
    assert caught.value.field is not None and "\n" not in str(caught.value)
