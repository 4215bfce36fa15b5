"""`--model monai-bundle:FOLDER`: a stand-in for MONAI's brats_mri_segmentation bundle, in its layout.

The stand-in's configs/inference.json and metadata.json are the published ones (Project-MONAI/model-zoo,
models/brats_mri_segmentation/configs) with a smaller SegResNet and window; its models/model.pt holds
random weights. The tests check what the bundle fixes: channel order, normalisation, the inferer,
the sigmoid threshold and the region-to-label conversion, and the one-line refusals.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from torch import nn

from neurotriage.cli import main
from neurotriage.errors import UserError
from neurotriage.files import sha256_file
from neurotriage.imaging.io import load_case, write_nifti
from neurotriage.imaging.labels import EDEMA, ENHANCING, NECROTIC_CORE
from neurotriage.imaging.naming import BRATS2020, SEQUENCES, from_internal
from neurotriage.imaging.sri24 import BRATS_AFFINE
from neurotriage.segmentation.external import NO_POST, labels_from_regions
from neurotriage.segmentation.loader import load_any_model
from neurotriage.segmentation.monai_bundle import BRATS_STORED, BundleGrid, onto_grid

from .conftest import TINY_SHAPE, write_blob_case

# The published network_def; the stand-in keeps its blocks and shrinks it.
REAL_NETWORK = {
    "_target_": "SegResNet",
    "blocks_down": [1, 2, 2, 4],
    "blocks_up": [1, 1, 1],
    "init_filters": 16,
    "in_channels": 4,
    "out_channels": 3,
    "dropout_prob": 0.2,
}
TINY_NETWORK = {**REAL_NETWORK, "blocks_down": [1, 1], "blocks_up": [1], "init_filters": 8}  # 8: GroupNorm's groups
REAL_ROI = [240, 240, 160]
REAL_INPUTS = {"0": "T1c", "1": "T1", "2": "T2", "3": "FLAIR"}
REAL_OUTPUTS = {"0": "Tumor core", "1": "Whole tumor", "2": "Enhancing tumor"}
# The bundle's own conversion of the thresholded TC/WT/ET channels to BraTS 2020 labels (its Lambdad).
BUNDLE_LAMBDA = lambda x: torch.where(x[[2]] > 0, 4, torch.where(x[[0]] > 0, 1, torch.where(x[[1]] > 0, 2, 0)))  # noqa: E731


def inference_json(network: dict, roi: list[int], threshold: float = 0.5) -> dict:
    """configs/inference.json as published, with the given network_def, window and threshold."""
    return {
        "imports": ["$import glob", "$import os"],
        "bundle_root": ".",
        "ckpt_dir": "$@bundle_root + '/models'",
        "output_dir": "$@bundle_root + '/eval'",
        "data_list_file_path": "$@bundle_root + '/configs/datalist.json'",
        "dataset_dir": "/workspace/data/medical/brats2018challenge",
        "test_datalist": "$monai.data.load_decathlon_datalist(@data_list_file_path, data_list_key='testing', "
        "base_dir=@dataset_dir)",
        "device": "$torch.device('cuda:0' if torch.cuda.is_available() else 'cpu')",
        "amp": True,
        "network_def": network,
        "network": "$@network_def.to(@device)",
        "preprocessing": {
            "_target_": "Compose",
            "transforms": [
                {"_target_": "LoadImaged", "keys": "image", "image_only": False},
                {"_target_": "NormalizeIntensityd", "keys": "image", "nonzero": True, "channel_wise": True},
            ],
        },
        "dataset": {"_target_": "Dataset", "data": "@test_datalist", "transform": "@preprocessing"},
        "dataloader": {"_target_": "DataLoader", "dataset": "@dataset", "batch_size": 1, "shuffle": True},
        "inferer": {"_target_": "SlidingWindowInferer", "roi_size": roi, "sw_batch_size": 1, "overlap": 0.5},
        "postprocessing": {
            "_target_": "Compose",
            "transforms": [
                {"_target_": "Activationsd", "keys": "pred", "sigmoid": True},
                {
                    "_target_": "Invertd",
                    "keys": "pred",
                    "transform": "@preprocessing",
                    "orig_keys": "image",
                    "meta_keys": "pred_meta_dict",
                    "nearest_interp": False,
                    "to_tensor": True,
                },
                {"_target_": "AsDiscreted", "keys": "pred", "threshold": threshold},
                {
                    "_target_": "Lambdad",
                    "keys": "pred",
                    "func": "$lambda x: torch.where(x[[2]] > 0, 4, torch.where(x[[0]] > 0, 1, "
                    "torch.where(x[[1]] > 0, 2, 0)))",
                },
                {
                    "_target_": "SaveImaged",
                    "keys": "pred",
                    "meta_keys": "pred_meta_dict",
                    "output_dir": "@output_dir",
                    "output_postfix": "seg",
                    "output_dtype": "uint8",
                    "resample": False,
                    "squeeze_end_dims": True,
                },
            ],
        },
        "handlers": [
            {
                "_target_": "CheckpointLoader",
                "load_path": "$@bundle_root + '/models/model.pt'",
                "load_dict": {"model": "@network"},
            },
            {"_target_": "StatsHandler", "iteration_log": False},
        ],
        "evaluator": {
            "_target_": "SupervisedEvaluator",
            "device": "@device",
            "val_data_loader": "@dataloader",
            "network": "@network",
            "inferer": "@inferer",
            "postprocessing": "@postprocessing",
            "val_handlers": "@handlers",
            "amp": True,
        },
        "initialize": ["$setattr(torch.backends.cudnn, 'benchmark', True)"],
        "run": ["$@evaluator.run()"],
    }


def metadata_json(inputs: dict = REAL_INPUTS, outputs: dict = REAL_OUTPUTS) -> dict:
    """configs/metadata.json as published (the parts the bundle's users read)."""
    return {
        "version": "0.5.3",
        "name": "BraTS MRI segmentation",
        "image_classes": "4 channel data, T1c, T1, T2, FLAIR at 1x1x1 mm",
        "label_classes": "3 channel data, channel 0 for Tumor core, channel 1 for Whole tumor, "
        "channel 2 for Enhancing tumor",
        "network_data_format": {
            "inputs": {"image": {"type": "image", "num_channels": len(inputs), "channel_def": inputs}},
            "outputs": {"pred": {"type": "image", "num_channels": len(outputs), "channel_def": outputs}},
        },
    }


def write_bundle(
    folder: Path,
    *,
    network: dict = TINY_NETWORK,
    roi: list[int] = (32, 32, 32),
    threshold: float = 0.5,
    inputs: dict = REAL_INPUTS,
    outputs: dict = REAL_OUTPUTS,
    weights_of: dict | None = None,
) -> Path:
    """A bundle folder: both configs and random weights (of `weights_of`'s network, default `network`)."""
    from monai.networks.nets import SegResNet

    (folder / "configs").mkdir(parents=True)
    (folder / "models").mkdir()
    (folder / "configs" / "inference.json").write_text(json.dumps(inference_json(network, list(roi), threshold)))
    (folder / "configs" / "metadata.json").write_text(json.dumps(metadata_json(inputs, outputs)))
    torch.manual_seed(0)
    kwargs = {k: v for k, v in (weights_of or network).items() if k != "_target_"}
    torch.save(SegResNet(**kwargs).state_dict(), folder / "models" / "model.pt")
    return folder


def load(folder: Path):
    return load_any_model(f"monai-bundle:{folder}")


class Recorder(nn.Module):
    """Passes its input to the bundle's network, keeping a copy of every input it sees."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x.detach().clone())
        return self.network(x)


class FixedLogits(nn.Module):
    """A network that answers every input with the same logits."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = nn.Parameter(logits[None], requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(x.shape[0], -1, -1, -1, -1)


class NoTumour(nn.Module):
    """A network that sees no tumour anywhere."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0], 3, *x.shape[2:]), -20.0) * self.scale


def zscored(volume: np.ndarray) -> np.ndarray:
    """NormalizeIntensityd(nonzero=True) by hand: z-scored over the non-zero voxels, zeros kept."""
    out = np.zeros_like(volume, dtype=np.float64)
    inside = volume != 0
    out[inside] = (volume[inside] - volume[inside].mean()) / volume[inside].std()
    return out


@pytest.fixture(scope="module")
def case_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_blob_case(tmp_path_factory.mktemp("bundle-cases"), "TINY_000", seed=0)


def test_the_published_configs_load_as_published(tmp_path):
    model = load(write_bundle(tmp_path / "brats_mri_segmentation", network=REAL_NETWORK, roi=REAL_ROI))
    assert type(model.network).__name__ == "SegResNet" and model.network.init_filters == 16
    assert not model.network.training  # dropout off
    assert list(model.inferer.roi_size) == REAL_ROI and model.inferer.overlap == 0.5
    assert model.inferer.sw_batch_size == 1
    assert model.channels == ["t1ce", "t1", "t2", "flair"]
    assert model.regions == {"TC": 0, "WT": 1, "ET": 2}
    assert model.threshold == 0.5
    assert model.grid == BundleGrid(("L", "P", "S"), (1.0, 1.0, 1.0))  # BraTS files as stored
    folder = (tmp_path / "brats_mri_segmentation").resolve()
    assert model.sha256 == sha256_file(folder / "models" / "model.pt")
    assert model.config.model_id == "MONAI bundle BraTS MRI segmentation 0.5.3"
    assert model.config.origin == f"monai-bundle:{folder}"
    assert model.config.tta is False and model.config.postprocess == NO_POST


def test_the_network_gets_the_sequences_in_the_bundles_order_each_z_scored(tmp_path, case_dir):
    case = load_case(case_dir, with_seg=False)
    model = load(write_bundle(tmp_path / "b", roi=list(TINY_SHAPE)))  # one window, no padding
    model.network = Recorder(model.network)
    model.labels(case, tta=False, precision="fp32")
    (seen,) = model.network.inputs
    expected = np.stack([zscored(case.images[name]) for name in ("t1ce", "t1", "t2", "flair")])
    np.testing.assert_allclose(seen[0].numpy(), expected, atol=1e-4)

    swapped = load_case(case_dir, with_seg=False)
    swapped.images["t1"], swapped.images["t2"] = case.images["t2"], case.images["t1"]
    model.labels(swapped, tta=False, precision="fp32")
    assert torch.equal(model.network.inputs[1], seen[:, [0, 2, 1, 3]])  # the bundle's T1 slot holds the T2 now


def test_the_input_order_is_the_metadatas(tmp_path, case_dir):
    case = load_case(case_dir, with_seg=False)
    flair_first = {"0": "FLAIR", "1": "T2", "2": "T1", "3": "T1c"}
    model = load(write_bundle(tmp_path / "b", roi=list(TINY_SHAPE), inputs=flair_first))
    assert model.channels == ["flair", "t2", "t1", "t1ce"]
    model.network = Recorder(model.network)
    model.labels(case, tta=False, precision="fp32")
    np.testing.assert_allclose(model.network.inputs[0][0, 0].numpy(), zscored(case.images["flair"]), atol=1e-4)


def test_region_to_label_conversion_is_the_bundles_own():
    regions = torch.from_numpy(np.random.default_rng(0).random((3, 9, 8, 7)) > 0.5)
    tc, wt, et = regions.numpy()
    ours = from_internal(labels_from_regions(tc, wt, et), BRATS2020)
    np.testing.assert_array_equal(ours, BUNDLE_LAMBDA(regions.float())[0].numpy())


@pytest.mark.parametrize(
    ("tc", "wt", "et", "label"),
    [
        (0, 0, 0, 0),
        (0, 1, 0, EDEMA),
        (1, 1, 0, NECROTIC_CORE),
        (1, 1, 1, ENHANCING),
        (0, 0, 1, ENHANCING),  # enhancement outside the core is still enhancing, as the bundle has it
        (1, 0, 0, NECROTIC_CORE),
    ],
)
def test_each_region_combination_gets_the_bundles_label(tc, wt, et, label):
    masks = [np.array([[[bool(v)]]]) for v in (tc, wt, et)]
    assert labels_from_regions(*masks)[0, 0, 0] == label


@pytest.mark.parametrize("threshold", [0.5, 0.7])
def test_regions_are_kept_from_the_configs_threshold_upwards(tmp_path, case_dir, threshold):
    case = load_case(case_dir, with_seg=False)
    model = load(write_bundle(tmp_path / "b", roi=list(TINY_SHAPE), threshold=threshold))
    assert model.threshold == threshold
    logit = float(np.log(threshold / (1 - threshold)))  # sigmoid(logit) == threshold
    logits = torch.full((3, *TINY_SHAPE), -20.0)
    logits[1, 10:30, 10:30, 10:26] = 20.0  # WT
    logits[0, 15:25, 15:25, 14:22] = 20.0  # TC
    logits[2, 20, 20, 18] = logit  # ET exactly at the threshold: kept (AsDiscreted keeps >=)
    logits[2, 20, 21, 18] = logit - 1e-3  # just below: dropped
    model.network = FixedLogits(logits)
    labels = model.labels(case, tta=False, precision="fp32")
    assert labels[20, 20, 18] == ENHANCING and labels[20, 21, 18] == NECROTIC_CORE
    assert labels[12, 12, 12] == EDEMA and labels[5, 5, 5] == 0
    assert (labels == ENHANCING).sum() == 1


def test_its_probabilities_are_the_sigmoid_regions_in_the_order_wt_tc_et(tmp_path, case_dir):
    case = load_case(case_dir, with_seg=False)
    model = load(write_bundle(tmp_path / "b", roi=list(TINY_SHAPE)))
    logits = torch.stack([torch.full(TINY_SHAPE, value) for value in (0.0, 2.0, -1.0)])  # TC, WT, ET
    model.network = FixedLogits(logits)
    made = model.run(case, tta=False, precision="fp32")
    assert (made.probabilities.kind, made.probabilities.threshold) == ("regions", 0.5)
    expected = torch.sigmoid(torch.tensor([2.0, 0.0, -1.0])).numpy()  # WT, TC, ET
    np.testing.assert_allclose(made.probabilities.values[:, 5, 5, 5], expected, atol=1e-6)
    assert (made.labels == NECROTIC_CORE).all()  # TC at exactly 0.5 is kept, as the bundle keeps it
    assert model.run(case, tta=False, precision="fp32", probabilities=False).probabilities is None


def test_a_case_on_another_grid_is_segmented_on_the_bundles_and_answered_on_its_own(tmp_path, case_dir):
    model = load(write_bundle(tmp_path / "b", roi=list(TINY_SHAPE)))
    lps = load_case(case_dir, with_seg=False)
    # The same scan stored RAS: the first two axes flipped, the affine saying so.
    ras_dir = tmp_path / "RAS_000"
    ras_affine = BRATS_AFFINE @ np.array([[-1, 0, 0, 39], [0, -1, 0, 43], [0, 0, 1, 0], [0, 0, 0, 1.0]])
    assert nib.aff2axcodes(ras_affine) == ("R", "A", "S")
    for key in SEQUENCES:
        write_nifti(lps.images[key][::-1, ::-1], ras_affine, ras_dir / BRATS2020.filename("RAS_000", key))
    ras = load_case(ras_dir, with_seg=False)
    expected = model.labels(lps, tta=False, precision="fp32")
    np.testing.assert_array_equal(model.labels(ras, tta=False, precision="fp32")[::-1, ::-1], expected)


def _preprocessing(*steps: dict):
    """inference.json with these transforms after LoadImaged, in place of the z-score."""
    return _edit(
        "configs/inference.json",
        lambda c: c["preprocessing"].update(transforms=[{"_target_": "LoadImaged", "keys": "image"}, *steps]),
    )


ZSCORE = {"_target_": "NormalizeIntensityd", "keys": "image", "nonzero": True, "channel_wise": True}


def test_a_bundle_that_reorients_and_resamples_has_its_grid_used(tmp_path, case_dir):
    folder = write_bundle(tmp_path / "b")
    orient = {"_target_": "Orientationd", "keys": "image", "axcodes": "RAS"}
    resample = {"_target_": "Spacingd", "keys": "image", "pixdim": [2.0, 2.0, 2.0], "mode": "bilinear"}
    _preprocessing({"_target_": "EnsureChannelFirstd", "keys": "image"}, orient, resample, ZSCORE)(folder)
    model = load(folder)
    assert model.grid == BundleGrid(("R", "A", "S"), (2.0, 2.0, 2.0))
    model.network = Recorder(model.network)
    labels = model.labels(load_case(case_dir, with_seg=False), tta=False, precision="fp32")
    assert labels.shape == TINY_SHAPE
    (seen,) = model.network.inputs  # 20×22×18 at 2 mm fits one 32³ window; the 1 mm case takes 8
    assert seen.shape[2:] == (32, 32, 32)


def test_a_thick_slice_grid_goes_to_1_mm_and_back():
    image = torch.from_numpy(np.random.default_rng(0).random((2, 10, 12, 8)).astype(np.float32))
    affine = BRATS_AFFINE.copy()
    affine[:3, 2] *= 5.0  # 5 mm slices
    moved, back = onto_grid(image, affine, BRATS_STORED)
    assert moved.shape == (2, 10, 12, 36)  # (8 - 1) * 5 + 1 slices of 1 mm
    np.testing.assert_allclose(back(moved), image, atol=1e-5)
    same, identity = onto_grid(image, BRATS_AFFINE, BRATS_STORED)
    assert same is image and identity(image) is image  # the BraTS grid is passed through untouched


def test_segment_with_a_bundle_writes_brats_labels_on_the_case_grid(tmp_path, case_dir, capsys):
    bundle = write_bundle(tmp_path / "bundle")
    out = tmp_path / "seg.nii.gz"
    assert main(["segment", str(case_dir), "--model", f"monai-bundle:{bundle}", "--out", str(out)]) == 0
    written = nib.load(out)
    source = nib.load(case_dir / "TINY_000_flair.nii.gz")
    assert written.shape == source.shape and np.allclose(written.affine, source.affine)
    values = set(np.unique(np.asarray(written.dataobj)).tolist())
    assert values <= {0, 1, 2, 4} and values - {0}  # random weights still call some voxels tumour
    model = load(bundle)
    expected = model.labels(load_case(case_dir, with_seg=False), tta=False, precision="auto")
    np.testing.assert_array_equal(np.asarray(written.dataobj), from_internal(expected, BRATS2020))


def _drop(path: str):
    return lambda folder: (folder / path).unlink()


def _edit(path: str, change):
    def apply(folder: Path) -> None:
        data = json.loads((folder / path).read_text())
        change(data)
        (folder / path).write_text(json.dumps(data))

    return apply


def _channels(side: str, key: str, channels: dict):
    return _edit("configs/metadata.json", lambda m: m["network_data_format"][side][key].update(channel_def=channels))


def _inputs(channels: dict):
    return _channels("inputs", "image", channels)


def _outputs(channels: dict):
    return _channels("outputs", "pred", channels)


def _other_weights(folder: Path) -> None:
    shutil.rmtree(folder)
    write_bundle(folder, weights_of={**TINY_NETWORK, "init_filters": 16})


def _no_sigmoid(config: dict) -> None:
    config["postprocessing"]["transforms"][0]["sigmoid"] = False


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_drop("configs/inference.json"), "configs/inference.json: not found; a MONAI bundle folder holds"),
        (_drop("configs/metadata.json"), "configs/metadata.json: not found"),
        (_drop("models/model.pt"), "models/model.pt: not found"),
        (_inputs({"0": "T1c", "1": "T1", "2": "T2", "3": "ADC"}), "channel 3 'ADC' is not a BraTS sequence"),
        (_inputs({"0": "T1c", "1": "T1", "2": "T2", "3": "T1"}), "name one sequence twice"),
        (_inputs({"0": "T1c", "1": "T1", "2": "T2"}), "wrong channel count: it lists 3 input channels"),
        (_outputs({"0": "Tumor core", "1": "Whole tumor", "2": "Edema"}), "are not the regions tumour core"),
        (_other_weights, "models/model.pt: weights do not fit the network_def"),
        (_edit("configs/inference.json", _no_sigmoid), "postprocessing applies no sigmoid"),
        (_edit("configs/inference.json", lambda c: c.pop("inferer")), "configs/inference.json: no 'inferer'"),
        (
            _preprocessing({"_target_": "ScaleIntensityRanged", "keys": "image"}, ZSCORE),
            "preprocessing step ScaleIntensityRanged is not one neurotriage reproduces",
        ),
        (
            _preprocessing({**ZSCORE, "channel_wise": False}),
            "preprocessing is not NormalizeIntensityd with nonzero and channel_wise",
        ),
    ],
)
def test_a_broken_bundle_is_refused_in_one_line_naming_the_file(tmp_path, damage, message):
    folder = write_bundle(tmp_path / "b")
    damage(folder)
    with pytest.raises(UserError) as caught:
        load(folder)
    assert message in caught.value.message and "\n" not in caught.value.message
    assert str(folder.resolve()) in caught.value.message


def test_a_missing_bundle_folder_is_one_line_on_the_command_line(tmp_path, case_dir, capsys):
    out = tmp_path / "seg.nii.gz"
    assert main(["segment", str(case_dir), "--model", f"monai-bundle:{tmp_path / 'nowhere'}", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "nowhere: no such folder; a MONAI bundle folder holds" in err and "\n" not in err
    assert main(["segment", str(case_dir), "--model", "monai-bundle:", "--out", str(out)]) == 2
    assert "give the model's folder after 'monai-bundle:'" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.slow
def test_an_analysis_names_the_bundle_it_used(tmp_path):
    from neurotriage.diagnosis.analysis import analyse
    from neurotriage.imaging.synth import generate_case, write_case

    case_dir = write_case(generate_case(11, "SYN_RF", kind="enhancing"), tmp_path, BRATS2020)
    bundle = write_bundle(tmp_path / "brats_mri_segmentation", roi=REAL_ROI)
    model = load(bundle)
    model.network = NoTumour()  # what is found does not matter here, and a tumour takes long to locate
    analysis = analyse(case_dir, model)
    provenance = analysis.provenance
    assert provenance.model_origin == f"monai-bundle:{bundle.resolve()}"
    assert provenance.model_id == "MONAI bundle BraTS MRI segmentation 0.5.3"
    assert provenance.model_sha256 == sha256_file(bundle / "models" / "model.pt")
    assert provenance.tta is False and provenance.postprocess == NO_POST.to_dict()
    assert analysis.labels.shape == (240, 240, 155) and not analysis.labels.any()
