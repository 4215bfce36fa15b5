"""`--model nnunet:FOLDER`: dataset.json's channels and labels mapped to ours, run by nnU-Net's own predictor.

The mapping, and the plumbing around nnU-Net (with a stand-in predictor), are tested everywhere. The
end-to-end tests build a tiny results folder in nnU-Net's layout (dataset.json and plans.json as
nnU-Net's BraTS 2021 conversion and planner write them, a two-stage PlainConvUNet with random
weights in fold_0/checkpoint_final.pth) and need the optional nnunetv2: without it they skip, and
fail under CI=true.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from neurotriage.cli import main
from neurotriage.errors import UserError
from neurotriage.files import sha256_file
from neurotriage.imaging.io import load_case, write_nifti
from neurotriage.imaging.labels import BACKGROUND, EDEMA, ENHANCING, NECROTIC_CORE
from neurotriage.imaging.naming import BRATS2020, from_internal
from neurotriage.segmentation import nnunet_model
from neurotriage.segmentation.external import NO_POST
from neurotriage.segmentation.loader import load_any_model
from neurotriage.segmentation.nnunet_model import dataset_channels, label_map, to_internal_labels

from .conftest import write_blob_case

# What nnU-Net's Dataset137_BraTS2021 conversion writes into dataset.json.
BRATS21 = {
    "channel_names": {"0": "T1", "1": "T1ce", "2": "T2", "3": "Flair"},
    "labels": {"background": 0, "whole tumor": [1, 2, 3], "tumor core": [2, 3], "enhancing tumor": [3]},
    "regions_class_order": [1, 2, 3],
    "numTraining": 1251,
    "file_ending": ".nii.gz",
}
# Its convert_labels_back_to_BraTS: each value nnU-Net writes -> the BraTS 2020 label.
NNUNET_BACK_TO_BRATS = {0: 0, 1: 2, 2: 1, 3: 4}
# The Medical Segmentation Decathlon's Task01_BrainTumour, as nnU-Net converts it (labels, not regions).
MSD = {
    "channel_names": {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"},
    "labels": {"background": 0, "edema": 1, "non-enhancing tumor": 2, "enhancing tumour": 3},
    "file_ending": ".nii.gz",
}
# nnU-Net's Dataset226_BraTS2024-BraTS-GLI: post-treatment labels, with a resection cavity.
BRATS24 = {
    "channel_names": {"0": "T1", "1": "T1C", "2": "T2W", "3": "T2F"},
    "labels": {"background": 0, "NETC": 1, "SNFH": 2, "ET": 3, "RC": 4},
    "file_ending": ".nii.gz",
}


def _resampling(is_seg: bool, order: int) -> dict:
    return {"is_seg": is_seg, "order": order, "order_z": 0, "force_separate_z": None}


ARCHITECTURE = {
    "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
    "arch_kwargs": {
        "n_stages": 2,
        "features_per_stage": [4, 8],
        "conv_op": "torch.nn.modules.conv.Conv3d",
        "kernel_sizes": [[3, 3, 3], [3, 3, 3]],
        "strides": [[1, 1, 1], [2, 2, 2]],
        "n_conv_per_stage": [1, 1],
        "n_conv_per_stage_decoder": [1],
        "conv_bias": True,
        "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
        "norm_op_kwargs": {"eps": 1e-05, "affine": True},
        "dropout_op": None,
        "dropout_op_kwargs": None,
        "nonlin": "torch.nn.LeakyReLU",
        "nonlin_kwargs": {"inplace": True},
    },
    "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
}
PLANS = {
    "dataset_name": "Dataset137_BraTS2021",
    "plans_name": "nnUNetPlans",
    "original_median_spacing_after_transp": [1.0, 1.0, 1.0],
    "original_median_shape_after_transp": [36, 44, 40],
    "image_reader_writer": "SimpleITKIO",
    "transpose_forward": [0, 1, 2],
    "transpose_backward": [0, 1, 2],
    "configurations": {
        "3d_fullres": {
            "data_identifier": "nnUNetPlans_3d_fullres",
            "preprocessor_name": "DefaultPreprocessor",
            "batch_size": 2,
            "patch_size": [32, 32, 32],
            "median_image_size_in_voxels": [36, 44, 40],
            "spacing": [1.0, 1.0, 1.0],
            "normalization_schemes": ["ZScoreNormalization"] * 4,
            "use_mask_for_norm": [True] * 4,
            "resampling_fn_data": "resample_data_or_seg_to_shape",
            "resampling_fn_seg": "resample_data_or_seg_to_shape",
            "resampling_fn_data_kwargs": _resampling(False, 3),
            "resampling_fn_seg_kwargs": _resampling(True, 1),
            "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
            "resampling_fn_probabilities_kwargs": _resampling(False, 1),
            "architecture": ARCHITECTURE,
            "batch_dice": False,
        }
    },
    "experiment_planner_used": "ExperimentPlanner",
    "label_manager": "LabelManager",
    "foreground_intensity_properties_per_channel": {
        str(c): {
            "max": 1e3,
            "mean": 5e2,
            "median": 5e2,
            "min": 0.0,
            "percentile_00_5": 0.0,
            "percentile_99_5": 1e3,
            "std": 1e2,
        }  # fmt: skip
        for c in range(4)
    },
}
RESULTS = Path("Dataset137_BraTS2021") / "nnUNetTrainer__nnUNetPlans__3d_fullres"


def write_results(
    root: Path, dataset: dict = BRATS21, folds=(0,), weights=lambda: {"stand-in": torch.zeros(1)}
) -> Path:
    """A results folder in nnU-Net's layout: dataset.json, plans.json, fold_N/checkpoint_final.pth."""
    folder = root / RESULTS
    folder.mkdir(parents=True)
    (folder / "dataset.json").write_text(json.dumps(dataset))
    (folder / "plans.json").write_text(json.dumps(PLANS))
    for fold in folds:
        (folder / f"fold_{fold}").mkdir()
        checkpoint = {
            "network_weights": weights(),
            "trainer_name": "nnUNetTrainer",
            "init_args": {"plans": PLANS, "configuration": "3d_fullres", "fold": fold, "dataset_json": dataset},
            "inference_allowed_mirroring_axes": (0, 1, 2),
        }
        torch.save(checkpoint, folder / f"fold_{fold}" / "checkpoint_final.pth")
    return folder


class StandInPredictor:
    """Answers as nnU-Net's predictor does: writes a segmentation of nnU-Net values on the first file's grid."""

    def __init__(self, values: np.ndarray) -> None:
        self.values = values
        self.use_mirroring = True
        self.calls: list[tuple[list[str], bool]] = []

    def predict_from_files_sequential(self, cases, targets, save_probabilities=False):
        print("nnU-Net's progress lines")
        (files,) = cases
        self.calls.append((files, self.use_mirroring))
        affine = nib.load(files[0]).affine
        write_nifti(self.values, affine, Path(targets[0] + ".nii.gz"))


@pytest.fixture(scope="module")
def case_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_blob_case(tmp_path_factory.mktemp("nnunet-cases"), "TINY_000", seed=0)


def test_brats21_regions_map_as_nnunets_own_conversion_back_to_brats():
    mapping = label_map(BRATS21, Path("dataset.json"))
    assert mapping == {0: BACKGROUND, 1: EDEMA, 2: NECROTIC_CORE, 3: ENHANCING}
    values = np.array(list(NNUNET_BACK_TO_BRATS))
    brats = from_internal(to_internal_labels(values, mapping, Path("r")), BRATS2020)
    assert brats.tolist() == list(NNUNET_BACK_TO_BRATS.values())


def test_labels_trained_by_name_map_by_name():
    assert label_map(MSD, Path("dataset.json")) == {0: BACKGROUND, 1: EDEMA, 2: NECROTIC_CORE, 3: ENHANCING}
    no_cavity = {**BRATS24, "labels": {k: v for k, v in BRATS24["labels"].items() if k != "RC"}}
    assert label_map(no_cavity, Path("dataset.json")) == {0: 0, 1: NECROTIC_CORE, 2: EDEMA, 3: ENHANCING}


@pytest.mark.parametrize(
    ("dataset", "sequences"),
    [
        (BRATS21, ["t1", "t1ce", "t2", "flair"]),
        (MSD, ["flair", "t1", "t1ce", "t2"]),
        (BRATS24, ["t1", "t1ce", "t2", "flair"]),
    ],
)
def test_channel_names_map_to_sequences_in_channel_order(dataset, sequences):
    assert dataset_channels(dataset, Path("dataset.json")) == sequences


@pytest.mark.parametrize(
    ("dataset", "message"),
    [
        (BRATS24, "label 'RC' (4) is none of necrotic core, oedema and enhancing tumour"),
        ({**BRATS21, "regions_class_order": None}, "are not three regions nested from the outside in"),
        (
            {**BRATS21, "labels": {"background": 0, "enhancing tumor": [3], "tumor core": [2, 3], "whole": [1, 2, 3]}},
            "are not three regions nested from the outside in",
        ),
        ({**BRATS21, "labels": {"whole tumor": [1, 2, 3]}}, "labels must be an object with background 0"),
    ],
)
def test_labels_without_a_counterpart_are_refused_in_one_line(dataset, message):
    with pytest.raises(UserError) as caught:
        label_map(dataset, Path("/r/dataset.json"))
    assert caught.value.message.startswith("/r/dataset.json: ") and message in caught.value.message


def test_unknown_channels_are_refused_in_one_line():
    dataset = {**BRATS21, "channel_names": {"0": "T1", "1": "ADC"}}
    with pytest.raises(UserError, match=r"dataset.json channel_names: channel 1 'ADC' is not a BraTS sequence"):
        dataset_channels(dataset, Path("dataset.json"))


def test_a_value_dataset_json_does_not_define_is_refused():
    with pytest.raises(UserError, match=r"nnU-Net wrote label values \[7\] that dataset.json does not define"):
        to_internal_labels(np.array([0, 1, 7]), {0: 0, 1: EDEMA}, Path("r"))


def test_the_case_goes_to_nnunet_in_dataset_json_order_and_comes_back_as_our_labels(
    tmp_path, case_dir, monkeypatch, capsys
):
    written = np.zeros((40, 44, 36), np.uint8)
    written[5:30, 5:30, 5:30] = 1  # nnU-Net's whole tumour only
    written[10:20, 10:20, 10:20] = 2
    written[12:15, 12:15, 12:15] = 3
    stand_in = StandInPredictor(written)
    monkeypatch.setattr(nnunet_model, "_predictor", lambda folder, folds: stand_in)
    folder = write_results(tmp_path)
    model = load_any_model(f"nnunet:{folder}")
    case = load_case(case_dir, with_seg=False)
    labels = model.predict(case)
    files, mirrored = stand_in.calls[0]
    assert files == [str(case.files.images[name]) for name in ("t1", "t1ce", "t2", "flair")]
    assert mirrored  # nnU-Net's own default
    expected = np.array([BACKGROUND, EDEMA, NECROTIC_CORE, ENHANCING], np.uint8)[written]
    np.testing.assert_array_equal(labels, expected)  # and no post-processing by default
    model.predict(case, tta=False)
    assert stand_in.calls[1][1] is False
    assert capsys.readouterr().out == ""  # nnU-Net's chatter stays out of the command's output
    assert model.config.postprocess == NO_POST
    assert model.config.model_id == f"nnU-Net Dataset137_BraTS2021 {RESULTS.name}"
    assert model.config.origin == f"nnunet:{folder.resolve()}"
    assert model.sha256 == sha256_file(folder / "fold_0" / "checkpoint_final.pth")
    with pytest.raises(UserError, match="precision 'bf16': an nnU-Net model runs at nnU-Net's own precision"):
        model.predict(case, precision="bf16")


def test_several_folds_are_all_used_and_hashed_together(tmp_path, monkeypatch):
    used = []
    monkeypatch.setattr(nnunet_model, "_predictor", lambda folder, folds: used.append(folds))
    folder = write_results(tmp_path, folds=(0, 1, 3))
    model = load_any_model(f"nnunet:{folder}")
    assert used == [[0, 1, 3]]
    names = [f"fold_{k}/checkpoint_final.pth" for k in (0, 1, 3)]
    listing = "".join(f"{sha256_file(folder / name)}  {name}\n" for name in names)
    assert model.sha256 == hashlib.sha256(listing.encode()).hexdigest()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: (f / "dataset.json").unlink(), "dataset.json: not found; an nnU-Net results folder holds"),
        (lambda f: (f / "plans.json").unlink(), "plans.json: not found"),
        (lambda f: (f / "fold_0" / "checkpoint_final.pth").unlink(), "fold_0/checkpoint_final.pth: not found"),
        (lambda f: (f / "dataset.json").write_text("{"), "dataset.json: not readable JSON"),
        (
            lambda f: (f / "dataset.json").write_text(json.dumps({**BRATS21, "file_ending": ".mha"})),
            "file_ending '.mha' is not .nii.gz or .nii",
        ),
    ],
)
def test_a_broken_results_folder_is_refused_in_one_line(tmp_path, damage, message):
    folder = write_results(tmp_path)
    damage(folder)
    with pytest.raises(UserError) as caught:
        load_any_model(f"nnunet:{folder}")
    assert message in caught.value.message and "\n" not in caught.value.message


def test_without_nnunetv2_the_refusal_says_how_to_install_it(tmp_path, case_dir, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "nnunetv2.inference.predict_from_raw_data", None)  # import fails
    folder = write_results(tmp_path)
    out = tmp_path / "seg.nii.gz"
    assert main(["segment", str(case_dir), "--model", f"nnunet:{folder}", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "pip install 'neurotriage[nnunet]' -c constraints.txt" in err
    assert not out.exists()


def _nnunetv2():
    try:
        import nnunetv2  # noqa: F401
    except ImportError:
        reason = "nnunetv2 is not installed (pip install -e '.[nnunet]' -c constraints.txt)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results folder whose fold_0 holds random weights of the network its plans describe."""
    _nnunetv2()
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    def weights() -> dict:
        torch.manual_seed(0)
        arch = ARCHITECTURE
        network = get_network_from_plans(
            arch["network_class_name"], arch["arch_kwargs"], arch["_kw_requires_import"], 4, 3, deep_supervision=False
        )
        return network.state_dict()

    return write_results(tmp_path_factory.mktemp("nnunet"), weights=weights)


def test_segment_gives_what_nnunet_itself_predicts_in_brats_labels(tiny_results, case_dir, tmp_path, capsys):
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    out = tmp_path / "seg.nii.gz"
    args = ["segment", str(case_dir), "--model", f"nnunet:{tiny_results}", "--out", str(out), "--no-tta"]
    assert main(args) == 0
    assert "nnU-Net" not in capsys.readouterr().out
    ours = nib.load(out)
    assert np.allclose(ours.affine, nib.load(case_dir / "TINY_000_flair.nii.gz").affine)

    predictor = nnUNetPredictor(device=torch.device("cpu"), use_mirroring=False, allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(str(tiny_results), use_folds=(0,))
    files = [str(case_dir / f"TINY_000_{name}.nii.gz") for name in ("t1", "t1ce", "t2", "flair")]
    predictor.predict_from_files_sequential([files], [str(tmp_path / "nnunet")])
    theirs = np.asarray(nib.load(tmp_path / "nnunet.nii.gz").dataobj)
    brats = np.vectorize(NNUNET_BACK_TO_BRATS.get)(theirs)
    assert len(np.unique(theirs)) > 1  # random weights still call some voxels tumour
    np.testing.assert_array_equal(np.asarray(ours.dataobj), brats)


def _results_of(dataset: dict, outputs: int, root: Path) -> Path:
    """A results folder for `dataset` whose fold_0 holds random weights of a network with `outputs` channels."""
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    def weights() -> dict:
        torch.manual_seed(0)
        arch = ARCHITECTURE
        network = get_network_from_plans(
            arch["network_class_name"],
            arch["arch_kwargs"],
            arch["_kw_requires_import"],
            4,
            outputs,
            deep_supervision=False,
        )
        return network.state_dict()

    return write_results(root, dataset=dataset, weights=weights)


def _clear(values: np.ndarray, margin: float) -> np.ndarray:
    """Voxels where every probability is farther than `margin` from 0.5 (quantisation cannot flip them)."""
    return (np.abs(values - 0.5) > margin).all(axis=0)


def test_nnunets_region_probabilities_come_back_on_the_case_grid_as_its_labels_did(tiny_results, case_dir):
    model = load_any_model(f"nnunet:{tiny_results}")
    case = load_case(case_dir, with_seg=False)
    made = model.prediction(case, tta=False, precision="auto")
    probs = made.probabilities
    assert (probs.kind, probs.threshold, probs.values.shape) == ("regions", 0.5, (3, *case.shape))
    # nnU-Net's own rule, each region above 0.5 written over the one holding it, gives the labels it wrote:
    # the probabilities lie on the case's grid as its labels do.
    wt, tc, et = probs.values > 0.5
    expected = np.select([et, tc, wt], [ENHANCING, NECROTIC_CORE, EDEMA], BACKGROUND)
    clear = _clear(probs.values, 1 / nnunet_model.PROBABILITY_STEPS)
    assert clear.mean() > 0.5 and len(np.unique(made.labels[clear])) > 1  # random weights stay near 0.5
    np.testing.assert_array_equal(made.labels[clear], expected[clear])


def test_nnunets_class_probabilities_are_summed_into_ours(case_dir, tmp_path):
    _nnunetv2()
    model = load_any_model(f"nnunet:{_results_of(MSD, 4, tmp_path)}")
    case = load_case(case_dir, with_seg=False)
    made = model.prediction(case, tta=False, precision="auto")
    probs = made.probabilities
    assert probs.kind == "classes" and probs.values.shape == (4, *case.shape)
    np.testing.assert_allclose(probs.values.sum(axis=0), 1, atol=4 / nnunet_model.PROBABILITY_STEPS)
    # MSD's 'edema' is nnU-Net's channel 1 and our label 2: the most likely of ours is the label it wrote.
    ordered = np.sort(probs.values, axis=0)
    clear = ordered[-1] - ordered[-2] > 2 / nnunet_model.PROBABILITY_STEPS
    assert clear.mean() > 0.5 and len(np.unique(made.labels[clear])) > 1  # random weights stay near 0.5
    np.testing.assert_array_equal(made.labels[clear], probs.values.argmax(axis=0)[clear])
