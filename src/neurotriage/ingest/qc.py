"""The quality gate between registration and the segmenter: is this a plausible brain, placed in BraTS space?

Three measures, all on the BraTS grid: how well the registered T1 brain correlates with the SRI24
template at a coarse scale, the brain volume the skull stripping found, and how well its mask overlaps
the template's brain. A study that fails any of them is stopped, with the figure, rather than handed on.

The similarity compares the two brains blurred to 8 mm: at that scale a tumour, other contrast or
other folding barely count, while a misplaced head does. On the shared real BraTS case in its
official placement it is 0.94; moved 20 mm, 0.81; turned 45 degrees, 0.86 (synthetic: 0.99, 0.90, 0.88).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from pydantic import BaseModel
from scipy import ndimage

from neurotriage import NOTICE
from neurotriage.files import atomic_path
from neurotriage.imaging.sri24 import brain_mask as template_brain
from neurotriage.imaging.sri24 import template_and_masks

BRAIN_ML = (1000.0, 2000.0)
MIN_SIMILARITY = 0.9
MIN_TEMPLATE_DICE = 0.8
BLUR_VOXELS = 4.0  # on the 2 mm grid `_coarse` makes: 8 mm
THICK_SLICE_MM = 3.0


class QualityCheck(BaseModel):
    """The gate's measures and verdict ("pass" or "fail"), with the reason for each failed measure."""

    template_similarity: float
    brain_volume_ml: float
    template_dice: float
    verdict: str
    reasons: list[str]

    @property
    def summary(self) -> str:
        """The three measures in one phrase."""
        return (
            f"template similarity {self.template_similarity:.2f}, brain {self.brain_volume_ml:.0f} ml, "
            f"mask/template Dice {self.template_dice:.2f}"
        )


def assess(t1_brats: np.ndarray, mask_brats: np.ndarray, brain_volume_ml: float) -> QualityCheck:
    """Score a registered T1 (BraTS grid) and its brain mask against the template and the plausible ranges."""
    template = template_brain()
    similarity = template_similarity(t1_brats, mask_brats)
    dice = 2.0 * np.count_nonzero(template & mask_brats) / max(1, template.sum() + mask_brats.sum())
    reasons = []
    if similarity < MIN_SIMILARITY:
        reasons.append(f"template similarity {similarity:.2f} is below {MIN_SIMILARITY}: the registration failed")
    if not BRAIN_ML[0] <= brain_volume_ml <= BRAIN_ML[1]:
        reasons.append(
            f"brain volume {brain_volume_ml:.0f} ml is outside {BRAIN_ML[0]:.0f}-{BRAIN_ML[1]:.0f} ml: "
            "skull stripping failed or this is not an adult brain"
        )
    if dice < MIN_TEMPLATE_DICE:
        reasons.append(f"brain mask overlaps the template's at Dice {dice:.2f}, below {MIN_TEMPLATE_DICE}")
    return QualityCheck(
        template_similarity=round(float(similarity), 3),
        brain_volume_ml=round(float(brain_volume_ml), 1),
        template_dice=round(float(dice), 3),
        verdict="fail" if reasons else "pass",
        reasons=reasons,
    )


def template_similarity(t1_brats: np.ndarray, mask_brats: np.ndarray) -> float:
    """Correlation of the masked T1 with the SRI24 template, both blurred to 8 mm (1 is a perfect match)."""
    return _correlation(_coarse(np.where(mask_brats, t1_brats, 0)).ravel(), _coarse_template().ravel())


@functools.lru_cache(maxsize=1)
def _coarse_template() -> np.ndarray:
    return _coarse(template_and_masks()["template"].astype(np.float32))


def _coarse(volume: np.ndarray) -> np.ndarray:
    """2 mm block means (the odd last slice dropped), blurred."""
    i, j, k = (n // 2 * 2 for n in volume.shape)
    blocks = volume[:i, :j, :k].reshape(i // 2, 2, j // 2, 2, k // 2, 2).mean(axis=(1, 3, 5), dtype=np.float32)
    return ndimage.gaussian_filter(blocks, BLUR_VOXELS)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    denominator = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum()) / denominator if denominator > 0 else 0.0


def save_qc_figure(t1_brats: np.ndarray, mask_brats: np.ndarray, check: QualityCheck, path: Path) -> Path:
    """Axial, coronal and sagittal T1 through the brain's centre; template brain outlined in cyan, the mask in red."""
    template = template_brain()
    centre = (
        np.round(np.argwhere(mask_brats).mean(axis=0)).astype(int) if mask_brats.any() else np.array([120, 120, 77])
    )
    fig = Figure(figsize=(10.5, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    # BraTS axes run towards patient left, posterior, superior: these slices are radiological views.
    planes = {
        "axial": lambda v: v[:, :, centre[2]].T,
        "coronal": lambda v: v[:, centre[1], :].T[::-1],
        "sagittal": lambda v: v[centre[0], :, :].T[::-1],
    }
    high = float(np.percentile(t1_brats[mask_brats], 99)) if mask_brats.any() else 1.0
    for index, (view, plane) in enumerate(planes.items()):
        ax = fig.add_subplot(1, 3, index + 1)
        ax.imshow(plane(t1_brats), cmap="gray", vmin=0, vmax=high or 1.0)
        ax.contour(plane(template.astype(np.uint8)), levels=[0.5], colors="cyan", linewidths=0.8)
        ax.contour(plane(mask_brats.astype(np.uint8)), levels=[0.5], colors="red", linewidths=0.8)
        ax.set_title(view, fontsize=9)
        ax.set_axis_off()
        if view != "sagittal":
            ax.text(0.02, 0.5, "R", transform=ax.transAxes, color="yellow", fontsize=10, va="center")
            ax.text(0.95, 0.5, "L", transform=ax.transAxes, color="yellow", fontsize=10, va="center")
    verdict = check.verdict.upper()
    fig.suptitle(
        f"ingest QC: {verdict} ({check.summary}); cyan: SRI24 brain, red: this brain",
        fontsize=9,
    )
    fig.text(0.5, 0.01, NOTICE, ha="center", fontsize=7)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path
