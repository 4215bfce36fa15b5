"""An nnU-Net v2 results folder, run by nnU-Net's own predictor (nnunetv2: the optional `nnunet` extra).

The folder is what nnU-Net training leaves, e.g. `Dataset137_BraTS2021/nnUNetTrainer__nnUNetPlans__3d_fullres`:
dataset.json, plans.json and fold_N/checkpoint_final.pth (every fold found is used and averaged, as
`nnUNetv2_predict` does; fold_all when there is no numbered fold). nnU-Net reads the case's files with
the reader its plans name, preprocesses, predicts (mirroring unless flip averaging is off) and writes
the segmentation itself; neurotriage hands it the sequences in dataset.json's channel order and maps
the values it writes to the internal labels, read from dataset.json:
- region-trained (nnU-Net's BraTS conversions: whole tumour (1, 2, 3), tumour core (2, 3), enhancing
  tumour (3), regions_class_order (1, 2, 3)): regions nested from the outside in, and the value
  written for the outermost is oedema, for the middle one necrotic core, for the innermost enhancing;
- label-trained: each label by its name (NCR or NETC, ED or SNFH, ET, or spelled out as the Medical
  Segmentation Decathlon does).
For an ensemble or the uncertainty map nnU-Net also saves the probabilities behind its labels (sigmoid
regions or a softmax over the labels); they come back onto the case's grid through nnU-Net's own
segmentation writer, as its labels do.
"""

from __future__ import annotations

import contextlib
import io
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neurotriage.errors import UserError
from neurotriage.imaging.io import Case, read_nifti
from neurotriage.imaging.labels import BACKGROUND, EDEMA, ENHANCING, NECROTIC_CORE, TUMOUR_LABELS, label_from_name
from neurotriage.segmentation.external import (
    ExternalConfig,
    ExternalModel,
    channel_sequences,
    model_id,
    read_json,
    weights_sha256,
)
from neurotriage.segmentation.prediction import Prediction, whole_grid
from neurotriage.segmentation.probabilities import CLASSES, REGIONS, Probabilities

LAYOUT = "an nnU-Net results folder holds dataset.json, plans.json and fold_N/checkpoint_final.pth"
CHECKPOINT = "checkpoint_final.pth"
INSTALL = (
    "nnU-Net models need nnunetv2, an optional extra: pip install 'neurotriage[nnunet]' -c constraints.txt "
    "(constraints.txt, in neurotriage's source, keeps torch at the CPU build neurotriage pins)"
)
NIFTI_ENDINGS = (".nii.gz", ".nii")
IGNORED_LABELS = ("background", "ignore")  # nnU-Net's names for what is never predicted as tumour
NNUNET_REGION_THRESHOLD = 0.5  # nnU-Net keeps a sigmoid region above it
PROBABILITY_STEPS = 254  # nnU-Net's segmentation writer stores uint8 for values under 255


@dataclass
class NnUNetModel(ExternalModel):
    """A loaded nnU-Net predictor, its input sequences and the map of its output values to internal labels."""

    predictor: Any  # nnunetv2's nnUNetPredictor
    channels: list[str]  # sequence keys, in dataset.json's channel order
    label_map: dict[int, int]  # value nnU-Net writes -> internal label
    region_trained: bool  # sigmoid regions (nnU-Net's BraTS conversions), else softmax labels
    file_ending: str
    config: ExternalConfig
    source: Path
    sha256: str

    @property
    def output_kind(self) -> str:
        """'regions' for a region-trained model (sigmoids), else 'classes' (softmax)."""
        return REGIONS if self.region_trained else CLASSES

    @property
    def threshold(self) -> float | None:
        """nnU-Net keeps a region above 0.5."""
        return NNUNET_REGION_THRESHOLD if self.region_trained else None

    def run(self, case: Case, *, tta: bool, precision: str, probabilities: bool = True) -> Prediction:
        """nnU-Net's segmentation of the case's files as internal labels and, with `probabilities`, the
        probabilities it saved beside it, all on the case's whole grid."""
        if precision != "auto":
            raise UserError(
                f"precision '{precision}': an nnU-Net model runs at nnU-Net's own precision "
                "(mixed on a GPU, float32 on the CPU); leave it at auto",
                field="precision",
            )
        self.predictor.use_mirroring = tta
        files = [str(case.files.images[name]) for name in self.channels]
        with tempfile.TemporaryDirectory(prefix="neurotriage-nnunet-") as tmp, _quiet():
            target = Path(tmp) / "case"
            try:
                self.predictor.predict_from_files_sequential([files], [str(target)], save_probabilities=probabilities)
            except (RuntimeError, KeyError, ValueError, TypeError, AssertionError, IndexError) as exc:
                raise UserError(f"{self.source}: nnU-Net failed on {case.files.folder} ({_reason(exc)})") from None
            _, values = read_nifti(target.with_name(target.name + self.file_ending))
            values = np.asarray(values)
            saved = self._probabilities(target) if probabilities else None
        if values.shape != case.shape:
            raise UserError(f"{self.source}: nnU-Net wrote a {values.shape} segmentation for a {case.shape} case")
        return Prediction(to_internal_labels(values, self.label_map, self.source), whole_grid(case.shape), saved)

    def _probabilities(self, target: Path) -> Probabilities:
        """The probabilities nnU-Net saved (target.npz) on the case's grid. They are in its reader's axis
        order, so each channel goes back through nnU-Net's own segmentation writer, as its labels did,
        quantised to PROBABILITY_STEPS (its writer stores integers)."""
        saved = np.load(target.with_suffix(".npz"))["probabilities"]
        with target.with_suffix(".pkl").open("rb") as file:
            properties = pickle.load(file)  # nnU-Net's own file, written just now in this private folder
        writer = self.predictor.plans_manager.image_reader_writer_class()
        channels = []
        for index, channel in enumerate(saved):
            path = target.with_name(f"probability_{index}{self.file_ending}")
            writer.write_seg(np.rint(channel * PROBABILITY_STEPS).astype(np.uint8), str(path), properties)
            channels.append(np.asarray(read_nifti(path)[1], np.float32) / PROBABILITY_STEPS)
        return self._ours(np.stack(channels))

    def _ours(self, channels: np.ndarray) -> Probabilities:
        """nnU-Net's channels as our probabilities: its regions in dataset.json's order (outside in: WT, TC,
        ET), or its classes (one per label value, in order) summed into the internal labels they map to."""
        if self.region_trained:
            return Probabilities(REGIONS, channels, NNUNET_REGION_THRESHOLD)
        classes = np.zeros((len(TUMOUR_LABELS) + 1, *channels.shape[1:]), np.float32)
        for channel, value in zip(channels, sorted(self.label_map), strict=True):
            classes[self.label_map[value]] += channel
        return Probabilities(CLASSES, classes)


def _quiet() -> contextlib.AbstractContextManager:
    """nnU-Net's progress lines on stdout, kept out of the command's own (JSON) output: they name
    nothing a user acts on, and nnU-Net's errors come as exceptions."""
    return contextlib.redirect_stdout(io.StringIO())


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def to_internal_labels(values: np.ndarray, label_map: dict[int, int], source: Path) -> np.ndarray:
    """nnU-Net's output values -> internal labels (uint8) through `label_map`."""
    lookup = np.full(max(label_map) + 1, -1, np.int16)
    lookup[list(label_map)] = list(label_map.values())
    values = values.astype(np.int64)
    unknown = (values < 0) | (values >= lookup.size)
    labels = lookup[np.where(unknown, 0, values)]
    if unknown.any() or (labels < 0).any():
        bad = sorted(set(np.unique(values).tolist()) - set(label_map))
        raise UserError(f"{source}: nnU-Net wrote label values {bad} that dataset.json does not define")
    return labels.astype(np.uint8)


def dataset_channels(dataset: dict, path: Path) -> list[str]:
    """The sequence keys of dataset.json's `channel_names` (or the older `modality`), in channel order."""
    names = dataset.get("channel_names", dataset.get("modality"))
    numbers = [str(i) for i in range(len(names))] if isinstance(names, dict) else []
    if not numbers or set(names) != set(numbers):
        raise UserError(f"{path}: channel_names must name channels numbered 0, 1, ...", field="model")
    return channel_sequences([str(names[n]) for n in numbers], f"{path} channel_names")


def label_map(dataset: dict, path: Path) -> dict[int, int]:
    """Each value nnU-Net writes -> the internal label it means, from dataset.json (see the module docstring)."""
    labels = dataset.get("labels")
    if not isinstance(labels, dict) or labels.get("background") != 0:
        raise UserError(f"{path}: labels must be an object with background 0", field="model")
    tumour = {name: value for name, value in labels.items() if name not in IGNORED_LABELS}
    if region_trained(dataset):
        return {BACKGROUND: BACKGROUND} | _region_map(tumour, dataset.get("regions_class_order"), path)
    return {BACKGROUND: BACKGROUND} | _named_map(tumour, path)


def region_trained(dataset: dict) -> bool:
    """True when dataset.json's labels are regions (a label of several values), as nnU-Net decides it."""
    labels = dataset.get("labels") if isinstance(dataset.get("labels"), dict) else {}
    return any(isinstance(value, list) and len(value) > 1 for value in labels.values())


def _region_map(regions: dict[str, Any], order: Any, path: Path) -> dict[int, int]:
    sets = [set(value) if isinstance(value, list) else {value} for value in regions.values()]
    nested = len(sets) == 3 and sets[0] > sets[1] > sets[2]
    if not nested or not isinstance(order, list) or len(order) != 3 or not all(isinstance(v, int) for v in order):
        raise UserError(
            f"{path}: regions {list(regions)} with regions_class_order {order} are not three regions "
            "nested from the outside in (whole tumour, tumour core, enhancing tumour)",
            field="model",
        )
    return dict(zip(order, (EDEMA, NECROTIC_CORE, ENHANCING), strict=True))


def _named_map(labels: dict[str, Any], path: Path) -> dict[int, int]:
    mapped = {}
    for name, value in labels.items():
        label = label_from_name(name)
        if not isinstance(value, int) or label in (None, BACKGROUND):
            raise UserError(
                f"{path}: label '{name}' ({value}) is none of necrotic core, oedema and enhancing tumour",
                field="model",
            )
        mapped[value] = label
    return mapped


def _folds(folder: Path) -> list[int | str]:
    """The numbered folds with a final checkpoint, else ['all'] when fold_all has one, as nnU-Net finds them."""
    numbered = sorted(
        int(path.parent.name.removeprefix("fold_"))
        for path in folder.glob(f"fold_*/{CHECKPOINT}")
        if path.parent.name.removeprefix("fold_").isdigit()
    )
    if numbered:
        return numbered
    if (folder / "fold_all" / CHECKPOINT).is_file():
        return ["all"]
    raise UserError(f"{folder / 'fold_0' / CHECKPOINT}: not found; {LAYOUT}", field="model")


def _predictor(folder: Path, folds: list[int | str]) -> Any:
    """nnU-Net's predictor, initialised from the folder as `nnUNetv2_predict` initialises it."""
    from neurotriage.segmentation.infer import inference_device

    try:
        from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
    except ImportError:
        raise UserError(f"{folder}: {INSTALL}", field="model") from None
    device = inference_device()
    with _quiet():
        predictor = nnUNetPredictor(
            perform_everything_on_device=device.type == "cuda", device=device, verbose=False, allow_tqdm=False
        )
        try:
            predictor.initialize_from_trained_model_folder(str(folder), use_folds=folds, checkpoint_name=CHECKPOINT)
        except (RuntimeError, KeyError, ValueError, TypeError, AssertionError, ImportError, OSError) as exc:
            message = f"{folder}: nnU-Net cannot load this results folder ({_reason(exc)})"
            raise UserError(message, field="model") from None
    if predictor.configuration_manager.previous_stage_name is not None:
        raise UserError(
            f"{folder}: a cascade's second stage needs the first stage's segmentation; give a single-stage "
            "configuration's folder (3d_fullres)",
            field="model",
        )
    return predictor


def load_nnunet(folder: Path) -> NnUNetModel:
    """Load an nnU-Net results folder; every fault is a one-line UserError naming the file."""
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder; {LAYOUT}", field="model")
    dataset = read_json(folder / "dataset.json", LAYOUT)
    plans = read_json(folder / "plans.json", LAYOUT)
    channels = dataset_channels(dataset, folder / "dataset.json")
    values = label_map(dataset, folder / "dataset.json")
    ending = dataset.get("file_ending")
    if ending not in NIFTI_ENDINGS:
        raise UserError(f"{folder / 'dataset.json'}: file_ending {ending!r} is not .nii.gz or .nii", field="model")
    folds = _folds(folder)
    checkpoints = [folder / f"fold_{fold}" / CHECKPOINT for fold in folds]
    config = ExternalConfig(
        model_id=model_id(f"nnU-Net {plans.get('dataset_name', folder.parent.name)} {folder.name}"),
        origin=f"nnunet:{folder}",
        tta=True,  # nnUNetv2_predict mirrors unless told not to
    )
    predictor = _predictor(folder, folds)
    sha256 = weights_sha256(folder, checkpoints)
    return NnUNetModel(predictor, channels, values, region_trained(dataset), ending, config, folder, sha256)
