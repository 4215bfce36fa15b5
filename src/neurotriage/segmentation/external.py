"""Models trained elsewhere, named 'monai-bundle:FOLDER' or 'nnunet:FOLDER': what they share.

Such a model is the user's: neurotriage runs it as its own framework would and claims nothing about
its accuracy. It answers `predict` as a neurotriage model does, and its `config` holds what the
pipeline reads: an id, where it came from, flip averaging and the clean-up. None of neurotriage's
post-processing is applied unless asked for: its thresholds were tuned on neurotriage's own model.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neurotriage.errors import UserError
from neurotriage.files import sha256_chunks, sha256_file
from neurotriage.imaging.io import Case
from neurotriage.imaging.labels import EDEMA, ENHANCING, NECROTIC_CORE
from neurotriage.imaging.naming import SEQUENCE_TITLES, sequence_from_name
from neurotriage.segmentation.plausibility import check_plausible
from neurotriage.segmentation.postprocess import PostProcess
from neurotriage.segmentation.prediction import Prediction, Segments

KINDS = ("monai-bundle", "nnunet")
NO_POST = PostProcess(min_component_ml=0, min_enhancing_ml=0, core_contact_mm=0, ring_growth_mm=0, enclosed_core_mm=0)
MODEL_ID_CHARS = 200  # what the database keeps of a finding's model id


@dataclass(frozen=True)
class ExternalConfig:
    """What the pipeline reads of a user-supplied model: its id, origin, flip averaging and clean-up."""

    model_id: str
    origin: str  # 'monai-bundle:/absolute/folder' or 'nnunet:/absolute/folder'
    tta: bool
    postprocess: PostProcess = NO_POST


def external_spec(model: Path | str | None) -> tuple[str, Path] | None:
    """(kind, absolute folder) of a 'monai-bundle:FOLDER' or 'nnunet:FOLDER' model name; None for any other."""
    if model is None:
        return None
    kind, sep, folder = str(model).partition(":")
    if not sep or kind not in KINDS:
        return None
    if not folder:
        raise UserError(f"model '{model}': give the model's folder after '{kind}:'", field="model")
    return kind, Path(folder).expanduser().resolve()


def model_id(text: str) -> str:
    """A model id that fits the database's column."""
    return text[:MODEL_ID_CHARS]


def require_file(path: Path, layout: str) -> Path:
    """`path` if it is a file; else a one-line refusal naming it and the layout expected."""
    if not path.is_file():
        raise UserError(f"{path}: not found; {layout}", field="model")
    return path


def read_json(path: Path, layout: str) -> dict:
    """A model folder's JSON file as a dict; a missing or unreadable one is a one-line refusal."""
    try:
        data = json.loads(require_file(path, layout).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: not readable JSON ({exc})", field="model") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: not a JSON object", field="model")
    return data


def channel_sequences(names: list[str], source: str) -> list[str]:
    """The sequence keys that a model's input channel names mean, in channel order; `source` names
    where the names were read, for the one-line refusal of an unknown or repeated one."""
    sequences = [sequence_from_name(name) for name in names]
    for index, (name, sequence) in enumerate(zip(names, sequences, strict=True)):
        if sequence is None:
            known = ", ".join(SEQUENCE_TITLES.values())
            raise UserError(f"{source}: channel {index} '{name}' is not a BraTS sequence ({known})", field="model")
    if len(set(sequences)) != len(sequences):
        raise UserError(f"{source}: channels {names} name one sequence twice", field="model")
    return sequences


def weights_sha256(folder: Path, files: list[Path]) -> str:
    """The SHA-256 of a model's weights: of the file itself when there is one, else of their
    `sha256sum` listing (paths relative to `folder`, in order)."""
    if len(files) == 1:
        return sha256_file(files[0])
    listing = "".join(f"{sha256_file(f)}  {f.relative_to(folder).as_posix()}\n" for f in files)
    return sha256_chunks([listing.encode()])


def labels_from_regions(tc: np.ndarray, wt: np.ndarray, et: np.ndarray) -> np.ndarray:
    """Region masks -> internal labels, as MONAI's BraTS bundle converts them: enhancing wherever ET,
    else necrotic core wherever TC, else oedema wherever WT."""
    labels = np.zeros(wt.shape, np.uint8)
    labels[wt] = EDEMA
    labels[tc] = NECROTIC_CORE
    labels[et] = ENHANCING
    return labels


class ExternalModel(Segments, ABC):
    """A user-supplied model: `run` runs it on a case; `predict` adds the gate and the clean-up."""

    config: ExternalConfig
    source: Path  # the model's folder
    sha256: str  # of its weights (`weights_sha256`)
    output_kind: str  # of its probabilities: 'classes' or 'regions' (segmentation.probabilities)
    threshold: float | None  # regions: the probability at which the model keeps a region

    def prediction(self, case: Case, *, tta: bool, precision: str, probabilities: bool = True) -> Prediction:
        """The model's own labels and, with `probabilities`, its probabilities, on the grid of a plausible case."""
        check_plausible(case)
        return self.run(case, tta=tta, precision=precision, probabilities=probabilities)

    def labels(self, case: Case, *, tta: bool, precision: str) -> np.ndarray:
        """The model's own segmentation of the case as internal labels (uint8) on the case's grid."""
        return self.run(case, tta=tta, precision=precision, probabilities=False).labels

    @abstractmethod
    def run(self, case: Case, *, tta: bool, precision: str, probabilities: bool) -> Prediction:
        """The model's own labels on the case's whole grid and, with `probabilities`, the probabilities behind them."""
