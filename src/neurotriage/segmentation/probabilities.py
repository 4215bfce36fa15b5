"""Per-voxel probabilities of the two kinds models give, how one turns into the other, and the labels they mean.

- 'classes': a softmax over the four internal labels (background, necrotic core, oedema, enhancing),
  summing to 1 in every voxel; the label is the most likely class.
- 'regions': independent sigmoids of the nested BraTS regions WT, TC, ET; a region is kept at or above
  a threshold, and only inside the region that holds it (ET inside TC inside WT).
Classes turn into regions exactly, as their marginals: WT = 1 - background, TC = necrotic core +
enhancing, ET = enhancing. Regions turn into classes by the same nesting: each region is first capped
by the one that holds it, then enhancing = ET, necrotic core = TC - ET, oedema = WT - TC, background =
1 - WT. That undoes the marginals of a class distribution exactly; of independent sigmoids it is the
distribution the nested labels imply.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from neurotriage.imaging.labels import BACKGROUND, EDEMA, ENHANCING, NECROTIC_CORE

CLASSES, REGIONS = "classes", "regions"


@dataclass(frozen=True)
class Probabilities:
    """(K, ...) float32 probabilities of one kind: 4 classes in internal label order, or 3 regions (WT, TC, ET)."""

    kind: str
    values: np.ndarray
    threshold: float | None = None  # regions: the probability at which a region is kept

    def regions(self) -> np.ndarray:
        """(3, ...) probabilities of WT, TC and ET."""
        if self.kind == REGIONS:
            return self.values
        p = self.values
        return np.stack([1 - p[BACKGROUND], p[NECROTIC_CORE] + p[ENHANCING], p[ENHANCING]])

    def classes(self) -> Iterator[np.ndarray]:
        """The four class probabilities in internal label order, one array at a time (memory: one box each)."""
        if self.kind == CLASSES:
            yield from self.values
            return
        wt, tc, et = self.values
        tc = np.minimum(tc, wt)
        et = np.minimum(et, tc)
        # In internal label order: background 0, necrotic core 1, oedema 2, enhancing 3.
        yield 1 - wt
        yield tc - et
        yield wt - tc
        yield et

    def labels(self) -> np.ndarray:
        """Internal labels (uint8): the most likely class (the first of equals), or the nested regions kept."""
        if self.kind == CLASSES:
            return self.values.argmax(0).astype(np.uint8)
        wt, tc, et = (channel >= self.threshold for channel in self.values)
        tc &= wt
        et &= tc
        labels = np.zeros(wt.shape, np.uint8)
        labels[wt] = EDEMA
        labels[tc] = NECROTIC_CORE
        labels[et] = ENHANCING
        return labels
