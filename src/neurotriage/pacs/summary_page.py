"""The summary page sent to the PACS: one rendered A4 page (RGB pixels) with the finding's key facts.

It carries the tri-planar view of the tumour on the patient's own T1ce (as the report draws it), the location,
volumes, midline crossing and symptom cross-check, the notice, and "PRELIMINARY" across the top until a clinician
has signed the finding off.
"""

from __future__ import annotations

import io

import numpy as np

from neurotriage.anatomy.location import Location
from neurotriage.clinical.crosscheck import CrossCheck
from neurotriage.ingest.native import NativeSegmentation
from neurotriage.report.figures import NATIVE_SPACE, to_png, triplanar_figure

PAGE_INCHES = (8.27, 11.69)  # A4 portrait
PAGE_DPI = 100
PRELIMINARY = "PRELIMINARY: not signed off by a clinician"
VOLUME_ROWS = (
    ("whole tumour", "whole_tumour"),
    ("tumour core", "tumour_core"),
    ("enhancing tumour", "enhancing"),
    ("necrosis / non-enhancing core", "necrosis"),
    ("edema", "edema"),
)


def summary_lines(location: Location, crosscheck: CrossCheck | None) -> list[str]:
    """The key facts of a finding, one line each, as the page prints them."""
    volumes = location.volumes_ml
    lines = [f"Location: {location.site()}"]
    if location.summary:
        lines.append(location.summary)
    lines.append(f"Crosses the midline: {'yes' if location.crosses_midline else 'no'}")
    lines += [f"{name}: {getattr(volumes, key):.1f} ml" for name, key in VOLUME_ROWS]
    if crosscheck is None:
        lines.append("Symptom cross-check: not available")
    else:
        lines.append(f"Symptom cross-check: {crosscheck.verdict}")
        if crosscheck.summary:
            lines.append(crosscheck.summary)
    return lines


def render_summary_page(
    native: NativeSegmentation, lines: list[str], notice: str, *, preliminary: bool, signed_by: str | None = None
) -> np.ndarray:
    """The page as an (rows, columns, 3) uint8 RGB array: banner, tri-planar view, key facts, notice."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # matplotlib: only when drawing (start-up time)
    from matplotlib.figure import Figure
    from matplotlib.image import imread

    fig = Figure(figsize=PAGE_INCHES, dpi=PAGE_DPI, facecolor="white")
    FigureCanvasAgg(fig)
    fig.text(0.5, 0.965, "neurotriage: brain tumour finding", ha="center", fontsize=18, weight="bold")
    if preliminary:
        fig.text(
            0.5,
            0.925,
            PRELIMINARY,
            ha="center",
            fontsize=20,
            weight="bold",
            color="white",
            bbox={"facecolor": "#c00000", "pad": 6, "linewidth": 0},
        )
    else:
        fig.text(0.5, 0.93, f"Signed off by {signed_by}", ha="center", fontsize=13)
    views = fig.add_axes((0.03, 0.55, 0.94, 0.35))
    views.imshow(imread(io.BytesIO(to_png(triplanar_figure(native.t1ce, native.labels, native.affine, NATIVE_SPACE)))))
    views.set_axis_off()
    fig.text(0.06, 0.52, "\n".join(lines), va="top", fontsize=11, wrap=True, linespacing=1.6)
    fig.text(0.5, 0.03, notice, ha="center", fontsize=13, weight="bold")
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
