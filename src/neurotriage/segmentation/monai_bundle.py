"""A MONAI bundle laid out as MONAI's `brats_mri_segmentation` (SegResNet, sigmoid TC/WT/ET), run as
`python -m monai.bundle run --config_file configs/inference.json` runs it, with everything read from
the bundle folder:
- the network: configs/inference.json's `network_def`, built by MONAI's ConfigParser, with the weights
  of models/model.pt;
- its input: the sequences in the order of metadata.json's input `channel_def` (T1c, T1, T2, FLAIR),
  brought onto the grid of the `preprocessing`'s Orientationd and Spacingd, and each z-scored over
  its own non-zero voxels (NormalizeIntensityd with nonzero and channel_wise), in that order;
- how it runs: the bundle's `inferer` (a 240×240×160 sliding window, overlap 0.5), under autocast;
- its output: sigmoid probabilities of the regions in metadata.json's output `channel_def` (TC, WT,
  ET), kept where at least the `postprocessing` AsDiscreted threshold (0.5), then labels as the
  bundle's own Lambdad makes them (`labels_from_regions`); the probabilities, in the order WT, TC,
  ET, are what an ensemble averages and the uncertainty map measures.
`brats_mri_segmentation` has neither Orientationd nor Spacingd: it reads BraTS files as they are
stored (1 mm, LPS), so a case on another grid is brought onto that one. The probabilities go back
onto the case's grid, as the bundle's Invertd would take them. A preprocessing step not listed here
is refused rather than skipped.
Nothing is downloaded: a file missing from the folder is a one-line refusal.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from torch import nn

from neurotriage.errors import UserError
from neurotriage.imaging.io import Case
from neurotriage.imaging.labels import TUMOUR_REGIONS, region_from_name
from neurotriage.imaging.sri24 import BRATS_AXCODES
from neurotriage.segmentation.external import (
    ExternalConfig,
    ExternalModel,
    channel_sequences,
    labels_from_regions,
    model_id,
    read_json,
    require_file,
    weights_sha256,
)
from neurotriage.segmentation.infer import autocast, flip_averaged, inference_device
from neurotriage.segmentation.prediction import Prediction, whole_grid
from neurotriage.segmentation.probabilities import REGIONS, Probabilities

LAYOUT = "a MONAI bundle folder holds configs/inference.json, configs/metadata.json and models/model.pt"
INFERENCE = Path("configs/inference.json")
METADATA = Path("configs/metadata.json")
WEIGHTS = Path("models/model.pt")
SPACING_TOLERANCE = 1e-3  # mm
READING_STEPS = ("LoadImaged", "EnsureChannelFirstd", "EnsureTyped", "ToTensord")  # nothing to reproduce
GRID_STEPS = ("Orientationd", "Spacingd")
NIFTI_AXES = (("L", "R"), ("P", "A"), ("I", "S"))  # axis codes as nibabel gives them for the NIfTI world


@dataclass(frozen=True)
class BundleGrid:
    """The grid a bundle's network sees: orientation codes and voxel size (mm)."""

    axcodes: tuple[str, str, str]
    spacing: tuple[float, float, float]


# BraTS files as stored: metadata.json's "4 channel data, T1c, T1, T2, FLAIR at 1x1x1 mm".
BRATS_STORED = BundleGrid(BRATS_AXCODES, (1.0, 1.0, 1.0))


@dataclass
class BundleModel(ExternalModel):
    """A loaded bundle: network, inferer, input sequences, output regions and threshold."""

    network: nn.Module
    inferer: Callable
    channels: list[str]  # sequence keys, in the bundle's input channel order
    regions: dict[str, int]  # 'TC', 'WT', 'ET' -> output channel
    threshold: float
    grid: BundleGrid
    config: ExternalConfig
    source: Path
    sha256: str

    output_kind = REGIONS

    def run(self, case: Case, *, tta: bool, precision: str, probabilities: bool = True) -> Prediction:
        """The bundle's segmentation of the case as internal labels, and its region probabilities in the
        order WT, TC, ET, on the case's whole grid."""
        probs = self.region_probabilities(case, tta=tta, precision=precision)
        kept = {region: probs[channel] >= self.threshold for region, channel in self.regions.items()}
        labels = labels_from_regions(kept["TC"], kept["WT"], kept["ET"])
        if not probabilities:
            return Prediction(labels, whole_grid(case.shape))
        regions = np.stack([probs[self.regions[name]] for name in TUMOUR_REGIONS])
        return Prediction(labels, whole_grid(case.shape), Probabilities(REGIONS, regions, self.threshold))

    def region_probabilities(self, case: Case, *, tta: bool = False, precision: str = "auto") -> np.ndarray:
        """(3, X, Y, Z) float32 sigmoid probabilities of the bundle's output channels on the case's grid."""
        from monai.transforms import NormalizeIntensity

        image = torch.from_numpy(np.stack([case.images[name] for name in self.channels]).astype(np.float32))
        moved, back = onto_grid(image, case.affine, self.grid)
        x = NormalizeIntensity(nonzero=True, channel_wise=True)(moved)[None]
        device = next(self.network.parameters()).device
        probs = flip_averaged(lambda t: self._sigmoid(t, precision), x.to(device), tta)[0].cpu()
        return back(probs).numpy()

    def _sigmoid(self, x: torch.Tensor, precision: str) -> torch.Tensor:
        with torch.inference_mode(), autocast(x.device, precision):
            logits = self.inferer(x, self.network)
        if logits.shape[1] != len(self.regions):
            raise UserError(
                f"{self.source / INFERENCE}: the network gives {logits.shape[1]} output channels, "
                f"metadata.json lists {len(self.regions)} regions",
                field="model",
            )
        return torch.sigmoid(logits.float())


def onto_grid(image: torch.Tensor, affine: np.ndarray, grid: BundleGrid) -> tuple[torch.Tensor, Callable]:
    """A (C, X, Y, Z) image on a bundle's grid (bilinear), and the function that brings (K, X, Y, Z)
    probabilities on that grid back to the image's; an image already on it passes through untouched."""
    spacing = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
    if nib.aff2axcodes(affine) == grid.axcodes and np.allclose(spacing, grid.spacing, atol=SPACING_TOLERANCE):
        return image, lambda probs: probs
    from monai.data import MetaTensor
    from monai.transforms import Compose, Orientation, Spacing

    orientation = Orientation(axcodes="".join(grid.axcodes), labels=NIFTI_AXES)
    onto = Compose([orientation, Spacing(pixdim=grid.spacing, mode="bilinear")])
    moved = onto(MetaTensor(image, affine=torch.as_tensor(affine, dtype=torch.float64)))

    def back(probs: torch.Tensor) -> torch.Tensor:
        traced = MetaTensor(probs)
        traced.copy_meta_from(moved)  # the grid and the transforms that led there, for MONAI's inverse
        return onto.inverse(traced).as_tensor()

    return moved.as_tensor(), back


def load_bundle(folder: Path) -> BundleModel:
    """Load a MONAI bundle folder; every fault is a one-line UserError naming the file."""
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder; {LAYOUT}", field="model")
    inference = read_json(folder / INFERENCE, LAYOUT)
    metadata = read_json(folder / METADATA, LAYOUT)
    weights = require_file(folder / WEIGHTS, LAYOUT)
    channels = channel_sequences(_channel_def(metadata, folder / METADATA, "inputs", "image"), f"{folder / METADATA}")
    regions = _regions(_channel_def(metadata, folder / METADATA, "outputs", "pred"), folder / METADATA)
    threshold = _threshold(inference, folder / INFERENCE)
    grid = _grid(inference, folder / INFERENCE)
    network, inferer = _components(inference, folder)
    _load_weights(network, weights)
    _check_inputs(network, channels, folder)
    name = metadata.get("name") or folder.name
    config = ExternalConfig(
        model_id=model_id(f"MONAI bundle {name} {metadata.get('version', '')}".strip()),
        origin=f"monai-bundle:{folder}",
        tta=False,  # the bundle's inference averages no flips
    )
    network.to(inference_device())
    sha256 = weights_sha256(folder, [weights])
    return BundleModel(network, inferer, channels, regions, threshold, grid, config, folder, sha256)


def _channel_def(metadata: dict, path: Path, side: str, key: str) -> list[str]:
    where = f"network_data_format.{side}.{key}.channel_def"
    try:
        definition = metadata["network_data_format"][side][key]["channel_def"]
    except (KeyError, TypeError):
        raise UserError(f"{path}: {where} is missing", field="model") from None
    numbers = [str(i) for i in range(len(definition))] if isinstance(definition, dict) else []
    if not numbers or set(definition) != set(numbers):
        raise UserError(f"{path}: {where} must name channels numbered 0, 1, ...", field="model")
    return [str(definition[n]) for n in numbers]


def _regions(names: list[str], path: Path) -> dict[str, int]:
    regions = {region_from_name(name): channel for channel, name in enumerate(names)}
    if len(names) != 3 or set(regions) != {"TC", "WT", "ET"}:
        raise UserError(
            f"{path}: output channels {names} are not the regions tumour core, whole tumour and enhancing tumour",
            field="model",
        )
    return regions


def _steps(inference: dict, section: str, path: Path) -> dict[str, dict]:
    """The transforms of a Compose section of inference.json, by class name."""
    compose = inference.get(section)
    transforms = compose.get("transforms") if isinstance(compose, dict) else None
    if not isinstance(transforms, list) or not all(isinstance(t, dict) for t in transforms):
        raise UserError(f"{path}: {section} is not a Compose with a list of transforms", field="model")
    return {str(t.get("_target_", "")).rsplit(".", 1)[-1]: t for t in transforms}


def _grid(inference: dict, path: Path) -> BundleGrid:
    """The grid of the preprocessing's Orientationd and Spacingd (BraTS as stored without them), once
    the rest of it is known to be the reading and the z-score done here."""
    steps = _steps(inference, "preprocessing", path)
    unknown = [name for name in steps if name not in (*READING_STEPS, *GRID_STEPS, "NormalizeIntensityd")]
    if unknown:
        raise UserError(f"{path}: preprocessing step {unknown[0]} is not one neurotriage reproduces", field="model")
    normalize = steps.get("NormalizeIntensityd", {})
    if normalize.get("nonzero") is not True or normalize.get("channel_wise") is not True:
        raise UserError(
            f"{path}: preprocessing is not NormalizeIntensityd with nonzero and channel_wise, the z-score done here",
            field="model",
        )
    orientation = steps.get("Orientationd", {"axcodes": "".join(BRATS_STORED.axcodes)})
    axcodes = str(orientation.get("axcodes") or ("RAS" if orientation.get("as_closest_canonical") else "")).upper()
    pixdim = steps.get("Spacingd", {}).get("pixdim", list(BRATS_STORED.spacing))
    pixdim = pixdim if isinstance(pixdim, list) else [pixdim] * 3
    if sorted(axcodes) not in _AXIS_CODE_SETS or len(pixdim) != 3 or not all(_positive(v) for v in pixdim):
        message = f"{path}: preprocessing's Orientationd {axcodes!r} or Spacingd {pixdim!r} is not a 3D grid"
        raise UserError(message, field="model")
    return BundleGrid(tuple(axcodes), tuple(float(v) for v in pixdim))


def _positive(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


# One code per axis pair, in any order ('LPS', 'RAS', 'SPL'...), sorted.
_AXIS_CODE_SETS = [sorted(a + b + c) for a in "LR" for b in "PA" for c in "IS"]


def _threshold(inference: dict, path: Path) -> float:
    """The AsDiscreted threshold after a sigmoid Activationsd in the bundle's postprocessing."""
    steps = _steps(inference, "postprocessing", path)
    if steps.get("Activationsd", {}).get("sigmoid") is not True:
        raise UserError(f"{path}: postprocessing applies no sigmoid Activationsd to the regions", field="model")
    threshold = steps.get("AsDiscreted", {}).get("threshold")
    if not isinstance(threshold, int | float) or isinstance(threshold, bool):
        raise UserError(f"{path}: postprocessing has no AsDiscreted threshold", field="model")
    return float(threshold)


def _components(inference: dict, folder: Path) -> tuple[nn.Module, Callable]:
    """`network_def` (in eval mode) and `inferer`, built by MONAI's ConfigParser as `monai.bundle run` would."""
    from monai.bundle import ConfigParser

    parser = ConfigParser({**inference, "bundle_root": str(folder)})
    built = []
    for key in ("network_def", "inferer"):
        if key not in inference:
            raise UserError(f"{folder / INFERENCE}: no '{key}'", field="model")
        try:
            built.append(parser.get_parsed_content(key))
        except (RuntimeError, KeyError, ValueError, TypeError, ImportError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"{folder / INFERENCE}: '{key}' cannot be built ({reason})", field="model") from None
    network, inferer = built
    if not isinstance(network, nn.Module):
        raise UserError(f"{folder / INFERENCE}: 'network_def' is not a PyTorch network", field="model")
    return network.eval(), inferer


def _load_weights(network: nn.Module, path: Path) -> None:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError):
        raise UserError(f"{path}: not a readable PyTorch weights file", field="model") from None
    # MONAI's CheckpointSaver stores the state dict itself, or under the key its save_dict gave it.
    state = payload.get("model", payload) if isinstance(payload, dict) else None
    if not isinstance(state, dict) or not state or not all(torch.is_tensor(v) for v in state.values()):
        raise UserError(f"{path}: holds no network weights (a state dict, or one under 'model')", field="model")
    try:
        network.load_state_dict(state)
    except RuntimeError as exc:
        lines = str(exc).splitlines()
        reason = (lines[1] if len(lines) > 1 else lines[0]).strip()
        message = f"{path}: weights do not fit the network_def in {INFERENCE} ({reason})"
        raise UserError(message, field="model") from None


def _check_inputs(network: nn.Module, channels: list[str], folder: Path) -> None:
    """Refuse a network whose first 3D convolution does not take one channel per sequence in metadata.json."""
    first = next((p for p in network.parameters() if p.ndim == 5), None)
    if first is not None and first.shape[1] != len(channels):
        raise UserError(
            f"{folder / METADATA}: wrong channel count: it lists {len(channels)} input channels "
            f"({', '.join(channels)}) but the network takes {first.shape[1]}",
            field="model",
        )
