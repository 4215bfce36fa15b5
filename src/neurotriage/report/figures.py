"""PNG figures for the report: tri-planar overlays, the uncertainty map, an axial montage and a region chart.

Every view is in radiological convention: the patient's left is on the image's right.
The arrays are first reoriented by their header's axis codes to DISPLAY_AXCODES, whatever
their storage order (BraTS LPS, RAS, permuted), so the screen layout below is fixed and
the orientation letters on each view are derived from the same codes.

matplotlib is imported inside the functions and used through its object API with the Agg
canvas, so importing this module is cheap and no global backend is switched.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import nibabel as nib
import numpy as np

from neurotriage.imaging.labels import ENHANCING, LABEL_COLOURS, LEGEND_NAMES, OVERLAY_COLOURS
from neurotriage.segmentation.uncertainty import LEVELS
from neurotriage.vocabulary import area_name

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from neurotriage.anatomy.location import Region
    from neurotriage.report.inputs import ReportInput

# Index increases toward the patient's Left, Posterior, Superior: columns run from the
# patient's right to left, rows from anterior (or superior, after a flip) downwards.
DISPLAY_AXCODES = ("L", "P", "S")
OPPOSITE = {"L": "R", "R": "L", "A": "P", "P": "A", "S": "I", "I": "S"}
OVERLAY_ALPHA = 0.5
SIDE_COLOURS = {"left": "#1f77b4", "right": "#d62728", "midline": "#7f7f7f"}
NO_TUMOUR = "No tumour found"
RADIOLOGICAL = "Radiological convention: the patient's left is on the image's right."
BRATS_SPACE = "BraTS space (SRI24 1 mm grid)"
NATIVE_SPACE = "Patient's own space (the T1ce as acquired)"
HEAT_FROM = 0.1  # uncertainty below this is left clear, so the image shows through where the model is sure
HEAT_ALPHA = 0.75
OUTLINE_COLOUR = "#00e5ff"  # the whole-tumour outline on the uncertainty views: cyan, off the heat scale


@dataclass(frozen=True)
class View:
    """How one plane is cut from a display-oriented volume and laid on screen."""

    name: str
    slice_axis: int
    row_axis: int
    col_axis: int
    flip_rows: bool  # True puts the superior end at the top

    def edge_letters(self) -> dict[str, str]:
        """Orientation letters for the top, bottom, left and right edges of this view."""
        row_code = DISPLAY_AXCODES[self.row_axis]
        down = OPPOSITE[row_code] if self.flip_rows else row_code
        right = DISPLAY_AXCODES[self.col_axis]
        return {"top": OPPOSITE[down], "bottom": down, "left": OPPOSITE[right], "right": right}


VIEWS = (
    View("axial", slice_axis=2, row_axis=1, col_axis=0, flip_rows=False),
    View("coronal", slice_axis=1, row_axis=2, col_axis=0, flip_rows=True),
    View("sagittal", slice_axis=0, row_axis=2, col_axis=1, flip_rows=True),
)
AXIAL = VIEWS[0]


@dataclass(frozen=True)
class DisplayVolume:
    """A background image and label map reoriented to DISPLAY_AXCODES, with voxel sizes."""

    image: np.ndarray
    seg: np.ndarray
    spacing: tuple[float, float, float]
    affine: np.ndarray  # display voxel index -> world mm (RAS)
    heat: np.ndarray | None = None  # a map drawn in heat colours over the image (0 to 1), reoriented alike


def to_display(
    image: np.ndarray, seg: np.ndarray | None, affine: np.ndarray, heat: np.ndarray | None = None
) -> DisplayVolume:
    """Reorient an image (and its seg and heat map) from the header's axis codes to DISPLAY_AXCODES."""
    current = nib.orientations.io_orientation(affine)
    transform = nib.orientations.ornt_transform(current, nib.orientations.axcodes2ornt(DISPLAY_AXCODES))
    seg = np.zeros(image.shape, np.uint8) if seg is None else seg
    if seg.shape != image.shape:
        raise ValueError(f"segmentation shape {seg.shape} differs from image shape {image.shape}")
    disp_affine = affine @ nib.orientations.inv_ornt_aff(transform, image.shape)
    image = nib.orientations.apply_orientation(image, transform)
    seg = nib.orientations.apply_orientation(seg, transform).astype(np.uint8)
    box = _content_box(image, seg)
    shift = np.eye(4)
    shift[:3, 3] = [s.start for s in box]
    spacing = tuple(float(s) for s in np.sqrt((disp_affine[:3, :3] ** 2).sum(axis=0)))
    heat = None if heat is None else nib.orientations.apply_orientation(heat, transform)[box]
    return DisplayVolume(image=image[box], seg=seg[box], spacing=spacing, affine=disp_affine @ shift, heat=heat)


def _content_box(image: np.ndarray, seg: np.ndarray, margin: int = 3) -> tuple[slice, slice, slice]:
    """The bounding box of the head (non-zero image or tumour), so the brain fills each view."""
    occupied = np.argwhere((image != 0) | (seg > 0))
    if len(occupied) == 0:
        return tuple(slice(0, n) for n in image.shape)
    low = np.maximum(occupied.min(axis=0) - margin, 0)
    high = np.minimum(occupied.max(axis=0) + margin + 1, image.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(low, high, strict=True))


def _plane(volume: np.ndarray, view: View, index: int) -> np.ndarray:
    plane = np.take(volume, index, axis=view.slice_axis)
    # np.take drops slice_axis; what remains keeps the other two axes in ascending order.
    rest = [a for a in range(3) if a != view.slice_axis]
    plane = plane if rest.index(view.row_axis) == 0 else plane.T
    return plane[::-1] if view.flip_rows else plane


def focus_voxel(vol: DisplayVolume) -> tuple[int, int, int]:
    """The tumour centroid, or the centre of the brain (non-zero image) when there is none."""
    tumour = vol.seg > 0
    if tumour.any():
        return tuple(int(round(c)) for c in np.argwhere(tumour).mean(axis=0))
    brain = np.argwhere(vol.image != 0)
    if len(brain) == 0:
        return tuple(s // 2 for s in vol.image.shape)
    return tuple(int(round(c)) for c in (brain.min(axis=0) + brain.max(axis=0)) / 2)


def _window(image: np.ndarray) -> tuple[float, float]:
    values = image[image != 0]
    if values.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(values, (0.5, 99.5))
    return float(low), float(max(high, low + 1e-6))


def _draw_image(ax, vol: DisplayVolume, view: View, index: int, window: tuple[float, float]) -> float:
    """Draw the grey background plane; returns its aspect (row mm per column mm) for what goes over it."""
    aspect = vol.spacing[view.row_axis] / vol.spacing[view.col_axis]
    image = _plane(vol.image, view, index)
    ax.imshow(image, cmap="gray", vmin=window[0], vmax=window[1], aspect=aspect, interpolation="nearest")
    ax.set_label(view.name)
    ax.set_xticks([])
    ax.set_yticks([])
    return aspect


def _draw_plane(ax, vol: DisplayVolume, view: View, index: int, window: tuple[float, float], small: bool) -> None:
    from matplotlib.colors import ListedColormap  # matplotlib: only when drawing (start-up time)

    aspect = _draw_image(ax, vol, view, index, window)
    labels = _plane(vol.seg, view, index)
    colours = ListedColormap(OVERLAY_COLOURS)
    ax.imshow(
        np.ma.masked_equal(labels, 0),
        cmap=colours,
        vmin=0,
        vmax=ENHANCING,
        alpha=OVERLAY_ALPHA,
        aspect=aspect,
        interpolation="nearest",
    )
    _edge_letters(ax, view, small)


def _draw_heat(ax, vol: DisplayVolume, view: View, index: int, window: tuple[float, float]):
    """The image with the heat map over it (from HEAT_FROM up) and the whole-tumour outline; returns the heat layer."""
    aspect = _draw_image(ax, vol, view, index, window)
    heat = _plane(vol.heat, view, index)
    shown = np.ma.masked_less(heat, HEAT_FROM)
    style = {"cmap": "hot", "vmin": 0, "vmax": 1, "alpha": HEAT_ALPHA, "aspect": aspect, "interpolation": "nearest"}
    layer = ax.imshow(shown, **style)
    tumour = _plane(vol.seg, view, index) > 0
    if tumour.any():
        ax.contour(tumour, levels=[0.5], colors=OUTLINE_COLOUR, linewidths=0.8)
    _edge_letters(ax, view, small=False)
    return layer


def _edge_letters(ax, view: View, small: bool) -> None:
    style = {
        "color": "white",
        "fontsize": 8 if small else 13,
        "fontweight": "bold",
        "transform": ax.transAxes,
        "bbox": {"facecolor": "black", "alpha": 0.6, "pad": 1, "linewidth": 0},
    }
    places = {
        "top": (0.5, 0.97, "center", "top"),
        "bottom": (0.5, 0.03, "center", "bottom"),
        "left": (0.03, 0.5, "left", "center"),
        "right": (0.97, 0.5, "right", "center"),
    }
    letters = view.edge_letters()
    # The montage keeps only R/L; the tri-planar views carry all four edges.
    edges = ("left", "right") if small else tuple(places)
    for edge in edges:
        x, y, ha, va = places[edge]
        ax.text(x, y, letters[edge], ha=ha, va=va, **style)


def _legend(fig) -> None:
    from matplotlib.patches import Patch  # matplotlib: only when drawing (start-up time)

    handles = [Patch(facecolor=LABEL_COLOURS[k], label=LEGEND_NAMES[k]) for k in sorted(LABEL_COLOURS)]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False, fontsize=9, labelcolor="white")


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # matplotlib: only when drawing (start-up time)
    from matplotlib.figure import Figure  # matplotlib: only when drawing (start-up time)

    fig = Figure(figsize=(width, height), facecolor="black")
    FigureCanvasAgg(fig)
    return fig


def _world(vol: DisplayVolume, voxel: tuple[int, int, int]) -> np.ndarray:
    return (vol.affine @ np.array([*voxel, 1.0]))[:3]


def triplanar_figure(image: np.ndarray, seg: np.ndarray | None, affine: np.ndarray, space: str = BRATS_SPACE) -> Figure:
    """Axial, coronal and sagittal overlays through the tumour centroid (mid-brain if none), titled with their space."""
    vol = to_display(image, seg, affine)
    focus = focus_voxel(vol)
    window = _window(vol.image)
    fig = _new_figure(12, 4.8)
    axes = fig.subplots(1, 3, gridspec_kw={"wspace": 0.03, "left": 0.01, "right": 0.99, "top": 0.8, "bottom": 0.1})
    for ax, view in zip(axes, VIEWS, strict=True):
        _draw_plane(ax, vol, view, focus[view.slice_axis], window, small=False)
        ax.set_title(view.name, color="white", fontsize=11)
    x, y, z = _world(vol, focus)
    if vol.seg.any():
        title = f"Through the tumour centroid (RAS x {x:.0f}, y {y:.0f}, z {z:.0f} mm)"
    else:
        title = f"{NO_TUMOUR}: mid-brain views"
    fig.suptitle(f"{space}. {title}\n{RADIOLOGICAL}", color="white", fontsize=11)
    _legend(fig)
    return fig


def uncertainty_figure(
    image: np.ndarray, seg: np.ndarray | None, uncertainty: np.ndarray, affine: np.ndarray
) -> Figure:
    """Axial, coronal and sagittal views through the tumour centroid (mid-brain if none) with the uncertainty
    (uint8, normalised entropy x LEVELS) in heat colours and the whole-tumour outline."""
    vol = to_display(image, seg, affine, heat=uncertainty.astype(np.float32) / LEVELS)
    focus = focus_voxel(vol)
    window = _window(vol.image)
    fig = _new_figure(12, 4.8)
    axes = fig.subplots(1, 3, gridspec_kw={"wspace": 0.03, "left": 0.01, "right": 0.99, "top": 0.8, "bottom": 0.2})
    for ax, view in zip(axes, VIEWS, strict=True):
        layer = _draw_heat(ax, vol, view, focus[view.slice_axis], window)
        ax.set_title(view.name, color="white", fontsize=11)
    bar = fig.colorbar(layer, cax=fig.add_axes([0.3, 0.11, 0.4, 0.035]), orientation="horizontal")
    bar.set_label("uncertainty: 0 certain, 1 all four labels equally likely", color="white", fontsize=9)
    bar.ax.tick_params(colors="white", labelsize=8)
    where = "through the tumour centroid; cyan: the whole-tumour outline" if vol.seg.any() else "mid-brain views"
    fig.suptitle(f"{BRATS_SPACE}. Uncertainty, {where}\n{RADIOLOGICAL}", color="white", fontsize=11)
    return fig


def montage_slices(vol: DisplayVolume, count: int) -> list[int]:
    """Axial slice indices spread evenly over the tumour (or the brain when there is none)."""
    mask = vol.seg > 0 if vol.seg.any() else vol.image != 0
    occupied = np.flatnonzero(mask.any(axis=(0, 1)))
    if occupied.size == 0:
        occupied = np.arange(vol.image.shape[2])
    picks = np.linspace(occupied[0], occupied[-1], num=min(count, occupied.size))
    return sorted({int(round(p)) for p in picks})


def montage_figure(image: np.ndarray, seg: np.ndarray | None, affine: np.ndarray, count: int = 12) -> Figure:
    """A grid of axial slices through the tumour, inferior to superior."""
    vol = to_display(image, seg, affine)
    slices = montage_slices(vol, count)
    window = _window(vol.image)
    ncols = min(6, len(slices))
    nrows = -(-len(slices) // ncols)
    fig = _new_figure(2.0 * ncols, 2.1 * nrows + 0.9)
    axes = fig.subplots(nrows, ncols, squeeze=False, gridspec_kw={"wspace": 0.02, "hspace": 0.12}).ravel()
    for ax, index in zip(axes, slices, strict=False):
        _draw_plane(ax, vol, AXIAL, index, window, small=True)
        z = _world(vol, (0, 0, index))[2]
        ax.set_title(f"z {z:.0f} mm", color="white", fontsize=8)
    for ax in axes[len(slices) :]:
        ax.set_axis_off()
    what = "Axial slices through the tumour" if vol.seg.any() else f"{NO_TUMOUR}: axial slices through the brain"
    fig.suptitle(f"{what}\n{RADIOLOGICAL}", color="white", fontsize=10)
    _legend(fig)
    return fig


def regions_figure(regions: list[Region], empty_text: str = NO_TUMOUR) -> Figure:
    """Horizontal bars of tumour volume (ml) per region, labelled with the region's side."""
    fig = _new_figure(7, 0.45 * max(len(regions), 3) + 1.2)
    fig.set_facecolor("white")
    ax = fig.subplots()
    if not regions:
        ax.text(0.5, 0.5, empty_text, ha="center", va="center", fontsize=14, transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    names = [f"{area_name(r.name)} ({r.side})" for r in regions]
    volumes = [r.ml for r in regions]
    colours = [SIDE_COLOURS.get(r.side, "#999999") for r in regions]
    ax.barh(names[::-1], volumes[::-1], color=colours[::-1])
    for y, ml in enumerate(volumes[::-1]):
        ax.text(ml, y, f" {ml:.1f} ml", va="center", fontsize=9)
    ax.set_xlabel("tumour volume (ml)")
    ax.set_xlim(0, max(volumes) * 1.25 or 1)
    ax.set_title("Tumour volume per region")
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def to_png(fig: Figure, dpi: int = 100) -> bytes:
    """Render a figure to PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, facecolor=fig.get_facecolor())
    return buffer.getvalue()


def render_figures(report: ReportInput, folder: Path) -> dict[str, Path]:
    """Write triplanar.png, uncertainty.png (given a map), montage.png and regions.png into `folder`; returns
    name -> path."""
    empty = "No region breakdown available" if report.has_tumour else NO_TUMOUR
    figures: dict[str, Figure] = {"regions": regions_figure(report.locate.regions if report.locate else [], empty)}
    if report.imaging is not None:
        images = report.imaging.images
        background = images.get("flair", next(iter(images.values())))
        seg, affine = report.imaging.seg, report.imaging.affine
        figures["triplanar"] = triplanar_figure(background, seg, affine)
        if report.imaging.uncertainty is not None:
            figures["uncertainty"] = uncertainty_figure(background, seg, report.imaging.uncertainty, affine)
        figures["montage"] = montage_figure(background, seg, affine)
        native = report.imaging.native
        if native is not None:
            figures["native"] = triplanar_figure(native.t1ce, native.labels, native.affine, NATIVE_SPACE)
    paths = {}
    for name, fig in figures.items():
        paths[name] = folder / f"{name}.png"
        paths[name].write_bytes(to_png(fig))
    return paths
