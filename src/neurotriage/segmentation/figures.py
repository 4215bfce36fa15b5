"""PNG figures: training curves, and a per-case montage (image, reference, prediction).

Montages reuse the imaging preview's orientation helpers: slices are cut in world (RAS)
orientation from the affine and shown in radiological convention, never from raw array order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from neurotriage import NOTICE
from neurotriage.files import atomic_path
from neurotriage.imaging.labels import ENHANCING, OVERLAY_COLOURS
from neurotriage.imaging.preview import VIEWS, radiological, to_ras


def _figure(width: float, height: float):
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> Path:
    fig.text(0.5, 0.005, NOTICE, ha="center", va="bottom", fontsize=7, color="0.4")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, facecolor=fig.get_facecolor())
    return path


def training_curves(epochs: list[dict], path: Path) -> Path:
    """Loss, voxel accuracy, and validation IoU and Dice per region over epochs, in four panels."""
    fig = _figure(16, 3.8)
    axes = fig.subplots(1, 4)
    x = [e["epoch"] + 1 for e in epochs]
    axes[0].plot(x, [e["train"]["loss"] for e in epochs], marker=".", label="train")
    axes[1].plot(x, [e["train"]["accuracy"] for e in epochs], marker=".", label="train")
    val = [e for e in epochs if e.get("val")]
    vx = [e["epoch"] + 1 for e in val]
    if val:
        axes[0].plot(vx, [e["val"]["loss"] for e in val], marker=".", label="validation")
        axes[1].plot(vx, [e["val"]["accuracy"] for e in val], marker=".", label="validation")
        for region in ("WT", "TC", "ET"):
            axes[2].plot(vx, [e["val"]["iou"][region] for e in val], marker=".", label=region)
            axes[3].plot(vx, [e["val"]["dice"][region] for e in val], marker=".", label=region)
    for ax, title in zip(axes, ("loss", "voxel accuracy", "validation IoU", "validation Dice"), strict=True):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return _save(fig, path)


def _slice_indices(labels: np.ndarray, brain: np.ndarray) -> dict[str, int]:
    """RAS axial and coronal indices through the labels' centre, else the brain's centre."""
    hits = np.argwhere(labels > 0) if labels.any() else np.argwhere(brain)
    centre = np.round(hits.mean(axis=0)).astype(int) if len(hits) else np.array(labels.shape) // 2
    return {"axial": int(centre[2]), "coronal": int(centre[1])}


def case_montage(
    image: np.ndarray, reference: np.ndarray, prediction: np.ndarray, affine: np.ndarray, path: Path, title: str
) -> Path:
    """Axial and coronal views through the tumour: the image, the reference on it, the prediction on it."""
    image, reference, prediction = (to_ras(np.asarray(v), affine) for v in (image, reference, prediction))
    brain = image > 0
    slices = _slice_indices(reference if reference.any() else prediction, brain)
    vmax = float(np.percentile(image[brain], 99.5)) if brain.any() else 1.0
    colours = ListedColormap(OVERLAY_COLOURS)
    fig = _figure(9, 6.6)
    fig.set_facecolor("black")
    axes = fig.subplots(len(VIEWS), 3)
    for row, view in enumerate(VIEWS):
        for col, (name, labels) in enumerate((("image", None), ("reference", reference), ("prediction", prediction))):
            ax = axes[row, col]
            ax.imshow(radiological(image, view, slices[view]), cmap="gray", vmin=0, vmax=vmax)
            if labels is not None:
                overlay = radiological(labels, view, slices[view]).astype(float)
                overlay[overlay == 0] = np.nan
                ax.imshow(overlay, cmap=colours, vmin=0, vmax=ENHANCING, alpha=0.55, interpolation="nearest")
            ax.set_axis_off()
            ax.text(0.02, 0.5, "R", color="white", fontsize=10, transform=ax.transAxes, va="center")
            ax.set_title(f"{name}, {view}", color="white", fontsize=10)
    fig.suptitle(f"{title}  (red core, green edema, yellow enhancing)", color="white", fontsize=11)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.9, bottom=0.04, wspace=0.03, hspace=0.12)
    return _save(fig, path)
