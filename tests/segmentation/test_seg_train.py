"""Training: loss goes down, records and checkpoints are written, runs resume, misuse is refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from neurotriage.cli import main
from neurotriage.errors import UserError
from neurotriage.imaging.io import load_case
from neurotriage.segmentation.checkpoint import read_checkpoint
from neurotriage.segmentation.infer import load_model
from neurotriage.segmentation.train import train
from neurotriage.segmentation.train_config import TrainConfig


def test_short_training_lowers_the_loss_and_writes_its_records(tiny_run):
    history = json.loads((tiny_run / "history.json").read_text())
    losses = [e["train"]["loss"] for e in history["epochs"]]
    assert len(losses) == 4
    assert min(losses[-2:]) < losses[0]
    last = history["epochs"][-1]
    assert set(last["val"]) == {"loss", "accuracy", "dice", "iou"} and set(last["val"]["dice"]) == {"WT", "TC", "ET"}
    assert history["cases"]["val"] and history["ranks"]["world_size"] == 1
    assert (tiny_run / "curves.png").stat().st_size > 10_000
    best = read_checkpoint(tiny_run / "best.pt")
    assert best["training"]["epoch"] == history["best"]["epoch"]
    config = best["config"]
    assert config.arch == "fastunet" and config.channels == ["flair", "t1", "t1ce", "t2"]
    assert config.recipe.name == "standard" and config.grid.shape == [40, 44, 36]
    assert config.label_scheme.regions["ET"] == [3]
    assert "optimizer" in read_checkpoint(tiny_run / "last.pt") and "optimizer" not in best


def test_raw_folder_is_prepared_first_and_runs_resume(tiny_cohort, tmp_path):
    out = tmp_path / "run"
    config = TrainConfig(str(tiny_cohort), str(out), width=4, epochs=1, batch_size=2, roi=32, workers=0)
    train(config)
    manifest = json.loads((out / "prepared" / "dataset.json").read_text())
    assert manifest["recipe"]["name"] == "standard" and len(manifest["cases"]) == 4
    first = read_checkpoint(out / "last.pt")["state_dict"]
    with pytest.raises(UserError, match="already holds a training run"):
        train(config)
    history = train(TrainConfig(str(tiny_cohort), str(out), epochs=2, workers=0), resume=True)
    assert [e["epoch"] for e in history["epochs"]] == [0, 1]
    assert history["config"]["width"] == 4 and history["config"]["roi"] == 32  # the run's own settings
    resumed = read_checkpoint(out / "last.pt")["state_dict"]
    assert any(not torch.equal(first[k], resumed[k]) for k in first)


def test_train_cli_refusals(prepared_tiny, tmp_path, capsys):
    assert main(["train", str(prepared_tiny), "--out", str(tmp_path / "r"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert main(["train", str(prepared_tiny), "--out", str(tmp_path / "r"), "--roi", "40"]) == 2
    assert "must be a multiple of 16" in capsys.readouterr().err
    assert main(["train", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "no BraTS cases found" in capsys.readouterr().err


def test_region_outputs_train_and_decode_to_labels(prepared_tiny, tiny_cohort, tmp_path):
    out = tmp_path / "regions"
    config = TrainConfig(str(prepared_tiny), str(out), width=4, epochs=1, roi=32, lr=1e-2, label_mode="regions",
                         workers=0)  # fmt: skip
    train(config)
    model = load_model(out)
    assert model.label_mode == "regions" and model.config.loss.weights == pytest.approx([1 / 3] * 3)
    labels = model.predict(load_case(tiny_cohort / "TINY_000"))
    assert labels.shape == (40, 44, 36) and set(np.unique(labels)) <= {0, 1, 2, 3}


def test_init_fine_tunes_from_given_weights_and_refuses_another_network(prepared_tiny, tiny_run, tmp_path):
    start = read_checkpoint(tiny_run / "best.pt")["state_dict"]
    base = {"width": 4, "epochs": 1, "batch_size": 2, "roi": 32, "workers": 0, "lr": 1e-7}
    train(TrainConfig(str(prepared_tiny), str(tmp_path / "tuned"), init=str(tiny_run / "best.pt"), **base))
    tuned = read_checkpoint(tmp_path / "tuned" / "last.pt")["state_dict"]
    train(TrainConfig(str(prepared_tiny), str(tmp_path / "fresh"), seed=1, **base))
    fresh = read_checkpoint(tmp_path / "fresh" / "last.pt")["state_dict"]
    weights = [k for k in start if start[k].is_floating_point() and start[k].numel() > 1]
    # A tiny learning rate moves the fine-tuned weights far less than a random start differs from them.
    assert max((tuned[k] - start[k]).abs().max().item() for k in weights) < 1e-3
    assert max((fresh[k] - start[k]).abs().max().item() for k in weights) > 1e-2
    with pytest.raises(UserError, match="a different network .* from this run's"):
        train(TrainConfig(str(prepared_tiny), str(tmp_path / "wide"), init=str(tiny_run), **{**base, "width": 8}))
    with pytest.raises(UserError, match="nowhere.pt: no such checkpoint"):
        train(TrainConfig(str(prepared_tiny), str(tmp_path / "typo"), init="nowhere.pt", **base))
    assert not (tmp_path / "typo").exists()
    with pytest.raises(UserError, match="no such checkpoint .*a run folder holding best.pt"):
        train(TrainConfig(str(prepared_tiny), str(tmp_path / "typo"), init=str(tmp_path), **base))
    with pytest.raises(UserError, match="started from .*best.pt; resume without an init checkpoint"):
        train(TrainConfig(str(prepared_tiny), str(tmp_path / "tuned"), init=str(tiny_run), **base), resume=True)
