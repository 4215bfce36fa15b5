"""What a model gives for a case before clean-up, and the one path from it to a `Segmentation`.

A model's `prediction` holds its own labels and, when asked for, the probabilities behind them, both
on a box of the case's grid (the brain's bounding box for neurotriage's models, the whole grid for
the others); outside the box the model saw no brain and everything is background. `segment_case`
cleans the labels up on the box and, from the probabilities, makes the uncertainty map.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from neurotriage.imaging.io import Case
from neurotriage.segmentation.postprocess import PostProcess
from neurotriage.segmentation.probabilities import Probabilities
from neurotriage.segmentation.uncertainty import uncertainty_map

Box = tuple[slice, slice, slice]


@dataclass(frozen=True)
class Prediction:
    """A model's own labels (uint8, internal) on a box of the case's grid, and its probabilities there."""

    labels: np.ndarray
    box: Box
    probabilities: Probabilities | None = None


@dataclass(frozen=True)
class Segmentation:
    """Cleaned-up internal labels on the case's grid and, when made, the uint8 uncertainty map beside them."""

    labels: np.ndarray
    uncertainty: np.ndarray | None = None


class Predicts(Protocol):
    """A model, or an ensemble of them, as `segment_case` uses it."""

    config: object  # its saved flip averaging (`tta`) and clean-up (`postprocess`)

    def prediction(self, case: Case, *, tta: bool, precision: str, probabilities: bool = True) -> Prediction:
        """The model's labels and, with `probabilities`, the probabilities behind them."""


class Segments:
    """`predict` and `segment` for a model or an ensemble that has `config` and `prediction` (`Predicts`)."""

    def predict(
        self, case: Case, *, tta: bool | None = None, precision: str = "auto", post: PostProcess | None = None
    ) -> np.ndarray:
        """Internal labels (uint8) on the case's grid, cleaned up by `post`; `tta` (flip averaging) and `post`
        default to the settings saved with the model."""
        return segment_case(self, case, tta=tta, precision=precision, post=post, uncertainty=False).labels

    def segment(self, case: Case, **options) -> Segmentation:
        """The case's labels and uncertainty map (`segment_case`, whose keyword options it takes)."""
        return segment_case(self, case, **options)


def whole_grid(shape: tuple[int, ...]) -> Box:
    """The box that is the whole grid."""
    return tuple(slice(0, n) for n in shape)


def segment_case(
    model: Predicts,
    case: Case,
    *,
    tta: bool | None = None,
    precision: str = "auto",
    post: PostProcess | None = None,
    uncertainty: bool = True,
) -> Segmentation:
    """Segment a case: the model's labels cleaned up by `post` on its box, and with `uncertainty` the map of
    how unsure its probabilities are (`uncertainty.uncertainty_map`); `tta` and `post` default to the model's config."""
    tta = model.config.tta if tta is None else tta
    post = model.config.postprocess if post is None else post
    made = model.prediction(case, tta=tta, precision=precision, probabilities=uncertainty)
    labels = np.zeros(case.shape, np.uint8)
    # Cleaned on the box: outside it is background, and for neurotriage's models it is a third of the grid.
    labels[made.box] = post.apply(made.labels, case.spacing, case.images["t1ce"][made.box])
    if not uncertainty:
        return Segmentation(labels)
    made_map = np.zeros(case.shape, np.uint8)
    made_map[made.box] = uncertainty_map(made.probabilities)
    return Segmentation(labels, made_map)
