"""A PNG montage of one case: FLAIR, T1, T1ce, T2 and the segmentation, axial and coronal.

Slices are shown in radiological convention (the patient's left on the image right), worked out
from the affine by reorienting to RAS, never from array order, and each panel is marked R / L.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from neurotriage import NOTICE
from neurotriage.files import atomic_path
from neurotriage.imaging.labels import ENHANCING, LABEL_COLOURS, LEGEND_NAMES, OVERLAY_COLOURS
from neurotriage.imaging.naming import SEQUENCE_TITLES, SEQUENCES

VIEWS = ("axial", "coronal")


VIEW_AXIS = {"axial": 2, "coronal": 1}  # RAS axis held fixed in each view


def _to_ras_transform(affine: np.ndarray) -> np.ndarray:
    current = nib.orientations.io_orientation(affine)
    return nib.orientations.ornt_transform(current, nib.orientations.axcodes2ornt(("R", "A", "S")))


def to_ras(volume: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Reorder a volume's axes to run towards Right, Anterior, Superior (from the affine)."""
    return nib.orientations.apply_orientation(volume, _to_ras_transform(affine))


def ras_affine(affine: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The affine of a volume of `shape` after `to_ras`."""
    return affine @ nib.orientations.inv_ornt_aff(_to_ras_transform(affine), shape)


def radiological(volume: np.ndarray, view: str, index: int) -> np.ndarray:
    """A 2D RAS slice as displayed: patient's right on image left; anterior / superior on top."""
    plane = np.take(volume, index, axis=VIEW_AXIS[view])
    # Rows: second axis (A or S) descending so it is on top; columns: x descending, so R is left.
    return plane[::-1, ::-1].T


def _slice_indices(seg: np.ndarray | None, brain: np.ndarray) -> dict[str, int]:
    """Axial and coronal RAS indices through the largest tumour cross-section, else mid-brain."""
    tumour = seg if seg is not None and seg.any() else None
    if tumour is not None:
        area = {view: (tumour > 0).sum(tuple(a for a in range(3) if a != axis)) for view, axis in VIEW_AXIS.items()}
        return {view: int(np.argmax(a)) for view, a in area.items()}
    idx = np.argwhere(brain)
    lo, hi = idx.min(0), idx.max(0)
    # Axial a little above the middle shows the ventricles; coronal through the middle.
    return {"axial": int(lo[2] + 0.6 * (hi[2] - lo[2])), "coronal": int(lo[1] + 0.45 * (hi[1] - lo[1]))}


def _crop(brain: np.ndarray, margin: int = 6) -> tuple[slice, slice]:
    rows, cols = np.nonzero(brain)
    if not rows.size:
        return slice(None), slice(None)
    return (
        slice(max(rows.min() - margin, 0), rows.max() + margin + 1),
        slice(max(cols.min() - margin, 0), cols.max() + margin + 1),
    )


def _mark_sides(ax, view: str) -> None:
    style = {"color": "white", "fontsize": 11, "fontweight": "bold", "transform": ax.transAxes}
    ax.text(0.02, 0.5, "R", ha="left", va="center", **style)
    ax.text(0.98, 0.5, "L", ha="right", va="center", **style)
    top, bottom = ("A", "P") if view == "axial" else ("S", "I")
    ax.text(0.5, 0.98, top, ha="center", va="top", **style)
    ax.text(0.5, 0.02, bottom, ha="center", va="bottom", **style)


def save_montage(
    images: dict[str, np.ndarray], seg: np.ndarray | None, affine: np.ndarray, path: Path, title: str = ""
) -> Path:
    """Write a PNG montage (4 sequences + seg overlay, axial and coronal rows); returns the path."""
    path = Path(path)
    ras = {k: to_ras(np.asarray(images[k], np.float32), affine) for k in SEQUENCES}
    ras_seg = None if seg is None else to_ras(np.asarray(seg), affine)
    world = ras_affine(affine, images["flair"].shape)
    brain = ras["flair"] > 0
    slices = _slice_indices(ras_seg, brain)
    fig = Figure(figsize=(15, 6.6), facecolor="black")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(VIEWS), len(SEQUENCES) + 1)
    labels = ListedColormap(OVERLAY_COLOURS)
    for row, view in enumerate(VIEWS):
        crop = _crop(radiological(brain, view, slices[view]))
        for col, key in enumerate([*SEQUENCES, "seg"]):
            ax = axes[row, col]
            base = "flair" if key == "seg" else key
            plane = radiological(ras[base], view, slices[view])[crop]
            vmax = float(np.percentile(ras[base][brain], 99.5)) if brain.any() else 1.0
            ax.imshow(plane, cmap="gray", vmin=0, vmax=vmax, interpolation="antialiased")
            if key == "seg" and ras_seg is not None:
                overlay = radiological(ras_seg, view, slices[view])[crop].astype(float)
                overlay[overlay == 0] = np.nan
                ax.imshow(overlay, cmap=labels, vmin=0, vmax=ENHANCING, alpha=0.55, interpolation="antialiased")
            ax.set_axis_off()
            _mark_sides(ax, view)
            name = "Segmentation on FLAIR" if key == "seg" else SEQUENCE_TITLES[key]
            axis = VIEW_AXIS[view]
            mm = world[axis, axis] * slices[view] + world[axis, 3]
            ax.set_title(f"{name}, {view} {'xyz'[axis]} = {mm:.0f} mm", color="white", fontsize=10)
    legend = [Patch(color=c, label=LEGEND_NAMES[k]) for k, c in LABEL_COLOURS.items()]
    fig.legend(handles=legend, loc="lower right", ncol=3, frameon=False, labelcolor="white", fontsize=9)
    fig.suptitle(title, color="white", fontsize=12)
    note = f"{NOTICE} Radiological convention: patient's left on image right."
    fig.text(0.01, 0.01, note, color="#bbbbbb", fontsize=8)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.9, bottom=0.06, wspace=0.03, hspace=0.12)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, facecolor="black", dpi=90)
    return path
