"""An ensemble: several models run on one case, their probabilities averaged before labels are decided.

The members' probabilities are averaged in one kind (segmentation.probabilities):
- when every member gives classes (a softmax over the four labels), the class probabilities are
  averaged and each voxel takes the most likely class, as each member decides alone;
- otherwise every member's probabilities become regions (WT, TC, ET), which both kinds give exactly
  (a softmax's marginals, a sigmoid's own outputs); they are averaged, and each region is kept at or
  above the members' threshold, inside the region that holds it. Classes are not the common kind:
  independent sigmoids have no class distribution of their own, and the most likely of four classes
  can win below the probability at which a region model keeps a region.
Region models with different thresholds cannot combine, and are refused in one line.

Every member runs with the ensemble's flip averaging, and the clean-up runs once, on the averaged
labels: both are the first model's settings unless told otherwise. The ensemble's id names its
members; its SHA-256 is that of the members' SHA-256s, one per line in the order given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from neurotriage.errors import UserError
from neurotriage.files import sha256_chunks
from neurotriage.imaging.io import Case
from neurotriage.imaging.labels import BACKGROUND
from neurotriage.segmentation.external import model_id as fit_model_id
from neurotriage.segmentation.postprocess import PostProcess
from neurotriage.segmentation.prediction import Box, Prediction, Segments
from neurotriage.segmentation.probabilities import CLASSES, REGIONS, Probabilities


@dataclass(frozen=True)
class EnsembleConfig:
    """What the pipeline reads of an ensemble: its id, flip averaging and clean-up."""

    model_id: str
    tta: bool
    postprocess: PostProcess


@dataclass
class Ensemble(Segments):
    """Models whose probabilities are averaged; it answers `predict` and `prediction` as one model does."""

    members: list[Any]  # loaded models (segmentation.loader.load_any_model)
    config: EnsembleConfig
    sha256: str
    output_kind: str
    threshold: float | None

    def prediction(self, case: Case, *, tta: bool, precision: str, probabilities: bool = True) -> Prediction:
        """The labels of the averaged probabilities (made whatever `probabilities` says: the labels come from
        them), on the smallest box that holds every member's."""
        total, box = None, None
        for member in self.members:
            made = member.prediction(case, tta=tta, precision=precision)
            values = made.probabilities.values if self.output_kind == CLASSES else made.probabilities.regions()
            if total is None:
                total, box = values.astype(np.float32, copy=True), made.box
                continue
            union = tuple(slice(min(a.start, b.start), max(a.stop, b.stop)) for a, b in zip(box, made.box, strict=True))
            total = _on(total, box, union, self.output_kind)
            total += _on(values, made.box, union, self.output_kind)
            box = union
        total /= np.float32(len(self.members))
        mean = Probabilities(self.output_kind, total, self.threshold)
        return Prediction(mean.labels(), box, mean)


def _on(values: np.ndarray, box: Box, union: Box, kind: str) -> np.ndarray:
    """(K, *box) probabilities laid on the larger box `union`, certain background around them."""
    if box == union:
        return values
    out = np.zeros((values.shape[0], *(s.stop - s.start for s in union)), np.float32)
    if kind == CLASSES:
        out[BACKGROUND] = 1
    out[(slice(None), *(slice(b.start - u.start, b.stop - u.start) for b, u in zip(box, union, strict=True)))] = values
    return out


def model_name(model: Any) -> str:
    """A model's recorded id, or its file name and architecture."""
    return model.config.model_id or f"{model.source.name} ({model.config.arch})"


def members_of(model: Any) -> list[Any]:
    """The models an ensemble averages; a single model alone."""
    return list(getattr(model, "members", [model]))


def ensemble(models: list[Any]) -> Ensemble:
    """Models combined as the module docstring says; region models that keep regions at different
    thresholds are a one-line UserError."""
    kind = CLASSES if all(m.output_kind == CLASSES for m in models) else REGIONS
    regions = [m for m in models if m.output_kind == REGIONS]
    for other in regions[1:]:
        if other.threshold != regions[0].threshold:
            raise UserError(
                f"models {model_name(regions[0])} and {model_name(other)} keep a region at probability "
                f"{regions[0].threshold:g} and {other.threshold:g}: an ensemble keeps its regions at one threshold",
                field="model",
            )
    names = " + ".join(model_name(m) for m in models)
    first = models[0].config
    config = EnsembleConfig(fit_model_id(f"ensemble of {len(models)}: {names}"), first.tta, first.postprocess)
    sha256 = sha256_chunks(["".join(f"{m.sha256}\n" for m in models).encode()])
    return Ensemble(models, config, sha256, kind, regions[0].threshold if regions else None)
