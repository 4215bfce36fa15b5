"""Export of the shipped model, its SHA-256 check, and the transfer-training options."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from neurotriage.errors import UserError
from neurotriage.files import sha256_file
from neurotriage.segmentation import default_model, infer
from neurotriage.segmentation.checkpoint import read_checkpoint
from neurotriage.segmentation.data import train_dataset


@pytest.fixture
def exported(tiny_run, tmp_path):
    target = tmp_path / "weights" / "default.pt"
    default_model.export(tiny_run / "best.pt", target, {"cohort": {"cases": 4}})
    return target


def test_export_writes_half_precision_weights_and_checksum(exported, tiny_run):
    payload = read_checkpoint(exported)
    floats = [v for v in payload["state_dict"].values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    assert payload["config"].model_id == default_model.MODEL_ID
    assert payload["training"] == {"cohort": {"cases": 4}}
    recorded = exported.with_name("default.pt.sha256").read_text().split()[0]
    assert recorded == sha256_file(exported)
    # fp16 weights predict like the fp32 run they came from.
    original = read_checkpoint(tiny_run / "best.pt")["state_dict"]
    for key, value in payload["state_dict"].items():
        assert torch.allclose(value.float(), original[key].float(), atol=1e-2)


@pytest.mark.parametrize("shipped_as", ["torchscript", "checkpoint"])
def test_default_model_is_checked_against_its_sha256(exported, monkeypatch, shipped_as):
    scripted = exported.with_suffix(".ts")
    path = scripted if shipped_as == "torchscript" else exported
    monkeypatch.setattr(infer, "default_scripted_path", lambda: scripted if shipped_as == "torchscript" else None)
    monkeypatch.setattr(infer, "default_model_path", lambda: exported)
    model = infer.load_model(None)
    assert model.config.model_id == default_model.MODEL_ID and model.source == path
    assert model.sha256 == sha256_file(path)
    path.write_bytes(path.read_bytes() + b"tampered")
    with pytest.raises(UserError, match="does not match the recorded"):
        infer.load_model(None)
    path.with_name(path.name + ".sha256").unlink()
    with pytest.raises(UserError, match="no recorded checksum"):
        infer.load_model(None)


@pytest.mark.parametrize("augment", ["shading", "strong"])
def test_augmentation_keeps_labels_valid(prepared_tiny, augment):
    paths = sorted(prepared_tiny.glob("*.npz"))
    dataset = train_dataset(paths, (24, 24, 24), augment=augment, cache=True)
    torch.manual_seed(0)
    for i in range(len(paths)):
        sample = dataset[i][0]
        assert sample["image"].shape[1:] == (24, 24, 24)
        labels = np.unique(sample["label"].numpy())
        assert set(labels.tolist()) <= {0, 1, 2, 3}  # nearest-neighbour labels: no blended values
        assert torch.isfinite(sample["image"]).all()


@pytest.mark.slow
def test_train_default_fine_tunes_and_records_where_it_started(tmp_path):
    shipped = tmp_path / "init.pt"
    shutil.copy(infer.default_model_path(), shipped)
    shutil.copy(infer.default_model_path().with_name("default.pt.sha256"), tmp_path / "init.pt.sha256")
    started_from = sha256_file(shipped)
    recipe = default_model.DefaultRecipe(cases=3, epochs=1, lr=1e-4, init=str(shipped))
    record = default_model.train_default(tmp_path / "work", recipe, tmp_path / "out.pt")
    assert record["init"] == {"path": str(shipped), "sha256": started_from}
    assert record["recipe"]["lr"] == 1e-4 and record["recipe"]["epochs_trained"] == 1
    assert read_checkpoint(tmp_path / "out.pt")["training"]["init"]["sha256"] == record["init"]["sha256"]
    # Exporting again with the command line's defaults still records how the run was trained.
    again = default_model.train_default(tmp_path / "work", default_model.DefaultRecipe(), tmp_path / "again.pt",
                                        export_only=True)  # fmt: skip
    assert again["recipe"] == record["recipe"] and again["cohort"] == record["cohort"]
    # ...and the weights it started from, even after that file was replaced (as default.pt is on release).
    shipped.write_bytes(b"replaced")
    later = default_model.train_default(tmp_path / "work", recipe, tmp_path / "later.pt", export_only=True)
    assert later["init"]["sha256"] == started_from
    with pytest.raises(UserError, match="missing.pt: no such checkpoint"):
        default_model.train_default(tmp_path / "other", default_model.DefaultRecipe(init="missing.pt"))
    assert not (tmp_path / "other").exists()


def test_train_default_keeps_to_the_generator_its_cohort_was_made_by(tmp_path):
    cohort = tmp_path / "work" / "cohort"
    cohort.mkdir(parents=True)
    (cohort / ".complete").write_text("")  # a cohort from before versions were recorded
    assert default_model.cohort_spec(cohort) == {"generator": "v5", "random_contrast": 0.0}
    with pytest.raises(UserError, match="made with") as error:
        default_model.train_default(tmp_path / "work", default_model.DefaultRecipe(generator="v9"))
    assert error.value.field == "generator" and not (tmp_path / "work" / "prepared").exists()


def test_train_default_passes_its_augmentation_to_the_recipe(tmp_path, monkeypatch, capsys):
    from neurotriage.cli import main

    asked = []
    monkeypatch.setattr(default_model, "train_default", lambda work, recipe, *a, **k: asked.append(recipe) or {})
    assert main(["train-default", "--work", str(tmp_path), "--augment", "shading"]) == 0
    assert main(["train-default", "--work", str(tmp_path)]) == 0
    assert [r.augment for r in asked] == ["shading", "strong"]
    with pytest.raises(SystemExit) as refused:
        main(["train-default", "--work", str(tmp_path), "--augment", "none"])
    assert refused.value.code == 2 and "--augment" in capsys.readouterr().err
