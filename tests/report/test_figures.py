"""Figures: radiological convention from the header, whatever the array order."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from neurotriage.anatomy.location import Region
from neurotriage.imaging.sri24 import BRATS_AFFINE
from neurotriage.report.figures import (
    NO_TUMOUR,
    montage_figure,
    montage_slices,
    regions_figure,
    render_figures,
    to_display,
    triplanar_figure,
    uncertainty_figure,
)

from .conftest import edge_uncertainty, synthetic_case


def _reoriented(image: np.ndarray, seg: np.ndarray, axcodes: tuple[str, str, str]):
    """The same volume stored in another axis order, with the matching header (nibabel)."""
    img = nib.Nifti1Image(image, BRATS_AFFINE)
    target = nib.orientations.axcodes2ornt(axcodes)
    transform = nib.orientations.ornt_transform(nib.orientations.io_orientation(BRATS_AFFINE), target)
    moved = img.as_reoriented(transform)
    assert nib.aff2axcodes(moved.affine) == axcodes
    return np.asanyarray(moved.dataobj), nib.orientations.apply_orientation(seg, transform), moved.affine


def _overlay_columns(fig, view: str) -> tuple[np.ndarray, int]:
    """Columns (relative to the panel's image) of the coloured overlay pixels in one view."""
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(int)
    ax = next(a for a in fig.axes if a.get_label() == view)
    box = ax.images[0].get_window_extent(fig.canvas.get_renderer())
    height = pixels.shape[0]
    panel = pixels[int(height - box.y1) + 1 : int(height - box.y0) - 1, int(box.x0) + 1 : int(box.x1) - 1]
    # Grey brain, black background and white letters are unsaturated; the overlay is coloured.
    saturated = panel.max(axis=-1) - panel.min(axis=-1) > 60
    return np.nonzero(saturated)[1], panel.shape[1]


@pytest.mark.parametrize("axcodes", [("L", "P", "S"), ("R", "A", "S"), ("S", "A", "R")])
@pytest.mark.parametrize("side", ["left", "right"])
def test_patient_left_is_on_the_image_right(side, axcodes):
    fig = triplanar_figure(*_reoriented(*synthetic_case(side), axcodes))
    for view in ("axial", "coronal"):
        columns, width = _overlay_columns(fig, view)
        assert columns.size > 20, f"{view}: tumour overlay not visible"
        on_right = float(np.mean(columns > width / 2))
        # Radiological convention: the patient's left is drawn on the image's right.
        assert on_right == pytest.approx(1.0 if side == "left" else 0.0, abs=0.02), (view, axcodes)


@pytest.mark.parametrize("axcodes", [("L", "P", "S"), ("S", "A", "R")])
@pytest.mark.parametrize("side", ["left", "right"])
def test_the_uncertainty_heat_lies_at_the_tumour_in_radiological_convention(side, axcodes):
    image, seg, affine = _reoriented(*synthetic_case(side), axcodes)
    fig = uncertainty_figure(image, seg, edge_uncertainty(seg), affine)
    assert "Uncertainty, through the tumour centroid" in fig._suptitle.get_text()
    for view in ("axial", "coronal"):
        columns, width = _overlay_columns(fig, view)
        assert columns.size > 20, f"{view}: heat not visible"
        assert float(np.mean(columns > width / 2)) == pytest.approx(1.0 if side == "left" else 0.0, abs=0.02)


def test_a_certain_segmentation_draws_no_heat():
    image, seg = synthetic_case("left")
    fig = uncertainty_figure(image, seg, np.zeros(seg.shape, np.uint8), BRATS_AFFINE)
    heat_layers = [ax.images[1] for ax in fig.axes if ax.get_label() in ("axial", "coronal", "sagittal")]
    assert len(heat_layers) == 3 and all(layer.get_array().mask.all() for layer in heat_layers)


def test_every_view_carries_orientation_letters():
    image, seg = synthetic_case("left")
    fig = triplanar_figure(image, seg, BRATS_AFFINE)
    expected = {"axial": ("R", "L", "A", "P"), "coronal": ("R", "L", "S", "I"), "sagittal": ("A", "P", "S", "I")}
    for ax in fig.axes:
        if ax.get_label() not in expected:
            continue
        letters = {t.get_text(): t.get_position() for t in ax.texts}
        left, right, top, bottom = expected[ax.get_label()]
        assert letters[left][0] < 0.5 < letters[right][0]
        assert letters[top][1] > 0.5 > letters[bottom][1]


def test_legend_names_the_tumour_labels():
    fig = triplanar_figure(*synthetic_case("right"), BRATS_AFFINE)
    legend = " ".join(t.get_text() for leg in fig.legends for t in leg.get_texts())
    for label in ("necrosis", "edema", "enhancing"):
        assert label in legend


def test_healthy_scan_gets_mid_brain_views_and_says_so():
    image, seg = synthetic_case(None)
    fig = triplanar_figure(image, seg, BRATS_AFFINE)
    assert NO_TUMOUR in fig._suptitle.get_text()
    for ax in fig.axes:
        if ax.images:
            assert ax.images[0].get_array().max() > 0, "the view should cut through the brain"
    assert NO_TUMOUR in montage_figure(image, None, BRATS_AFFINE)._suptitle.get_text()


def test_montage_stays_within_the_tumour():
    image, seg = synthetic_case("left")
    vol = to_display(image, seg, BRATS_AFFINE)
    slices = montage_slices(vol, 12)
    with_tumour = np.flatnonzero(vol.seg.any(axis=(0, 1)))
    assert slices[0] == with_tumour[0] and slices[-1] == with_tumour[-1]
    assert all(vol.seg[:, :, k].any() for k in slices)


def test_region_chart_labels_sides_and_handles_no_tumour():
    regions = [Region(name="frontal_lobe", side="left", ml=3.2), Region(name="insula", side="left", ml=1)]
    fig = regions_figure(regions)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["insula (left)", "frontal lobe (left)"]  # largest on top
    empty = regions_figure([])
    assert any(NO_TUMOUR in t.get_text() for t in empty.axes[0].texts)


def test_render_figures_writes_pngs(make_input, tmp_path):
    paths = render_figures(make_input("left"), tmp_path)
    assert set(paths) == {"triplanar", "uncertainty", "montage", "regions"}
    for path in paths.values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(render_figures(make_input("left", with_imaging=False), tmp_path)) == {"regions"}
