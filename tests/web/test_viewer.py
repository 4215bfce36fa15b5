"""The report page's NiiVue viewer in a real browser (Debian's chromium through Playwright).

One diagnosed study (the right frontal synthetic case, the oracle as model) and one signed-in page
serve every test here; each test sets the layout and tool it needs. Behaviour is read from the page
and from NiiVue's state (window.neurotriageViewer); pixels only where the question is what is drawn
where (the sagittal orientation). Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING

import nibabel as nib
import numpy as np
import pytest

from neurotriage.clinical import db, intake
from neurotriage.clinical.models import Finding
from neurotriage.diagnosis import pipeline
from neurotriage.imaging.labels import ANY_FILE_LABELS, LEGEND_NAMES
from neurotriage.report.figures import VIEWS
from neurotriage.segmentation.uncertainty import uncertainty_path, write_uncertainty

from ..conftest import install_oracle
from .conftest import chromium_page, live_server
from .helpers import PASSWORD
from .test_browser import pixels, save, tumour_column_is_left_of_centre

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.slow
NV = "window.neurotriageViewer"
READY = "#viewer[data-ready='1'], #viewer[data-ready='error']"


@dataclass
class Viewer:
    """The signed-in report page, the image URLs it requested, and the finding it shows."""

    page: Page
    finding: Finding
    image_requests: list[str] = field(default_factory=list)

    def js(self, expression: str):
        return self.page.evaluate(expression)

    def text(self, selector: str) -> str:
        return self.page.locator(selector).inner_text()

    def wait_ready(self) -> None:
        self.page.locator(READY).wait_for()
        assert self.page.locator("#viewer").get_attribute("data-ready") == "1", self.text("#viewer-status")

    def crosshair(self) -> list[float]:
        return self.js(f"Array.from({NV}.scene.crosshairPos)")

    def crosshair_mm(self) -> list[float]:
        return self.js(f"Array.from({NV}.frac2mm({NV}.scene.crosshairPos)).slice(0, 3)")

    def slice_number(self, view: str) -> int:
        """The 1-based slice number shown for one view ('axial 78/155' -> 78)."""
        return int(self.text(f"#slice-{view}").split()[1].split("/")[0])

    def choose(self, selector: str, value: str) -> None:
        self.page.select_option(selector, value)
        self.wait_ready()

    def screenshot(self, name: str) -> np.ndarray:
        self.page.wait_for_timeout(300)  # one more frame after the last change
        png = self.page.locator("#viewer").screenshot()
        save(png, name)
        return pixels(png)


@pytest.fixture(scope="module")
def finding(web_settings, case_zip, tmp_path_factory) -> Finding:
    """The right frontal case diagnosed once for this module, as the web jobs do (the oracle as model)."""
    root = tmp_path_factory.mktemp("viewer")
    with zipfile.ZipFile(case_zip) as archive:
        archive.extractall(root / "upload")
    (case,) = (root / "upload").iterdir()
    with db.transaction(web_settings.database_url) as session:
        patient_id = intake.add_patient(session, "Viewer Patient", city="Leeds", lat="53.80", lon="-1.55").id
    with pytest.MonkeyPatch.context() as monkeypatch:
        install_oracle(root, monkeypatch)
        options = pipeline.DiagnoseOptions(out_dir=root / "report", url=web_settings.database_url)
        stored = pipeline.diagnose(case, patient_id, options)
    with db.transaction(web_settings.database_url) as session:
        return session.get(Finding, stored["finding_id"])


@pytest.fixture(scope="module")
def viewer(web_settings, finding) -> Viewer:
    """The finding's report page, signed in, with its viewer loaded."""
    with live_server(web_settings) as base, chromium_page() as page:
        view = Viewer(page, finding)
        page.on("request", lambda r: "/images/" in r.url and view.image_requests.append(r.url.rsplit("/", 1)[1]))
        page.goto(f"{base}/login")
        page.fill("input[name=username]", "clin")
        page.fill("input[name=password]", PASSWORD)
        page.click("button:has-text('Sign in')")
        page.wait_for_url("**/patients")
        page.goto(f"{base}/reports/{finding.id}")
        view.wait_ready()
        yield view


def label_at(seg_path: str, mm: list[float]) -> str:
    """The legend name of the segmentation file's label at a world (RAS) position, 'none' outside."""
    image = nib.load(seg_path)
    vox = np.rint(np.linalg.inv(image.affine) @ [*mm, 1.0])[:3].astype(int)
    label = ANY_FILE_LABELS[int(np.asanyarray(image.dataobj)[tuple(vox)])]
    return LEGEND_NAMES.get(label, "none")


def test_readout_names_the_label_under_the_crosshair_at_the_centroid(viewer):
    centroid = viewer.finding.locate["centroid_mm"]
    mm = viewer.crosshair_mm()
    assert mm == pytest.approx(centroid, abs=1.0)
    name = label_at(viewer.finding.segmentation_path, mm)
    assert name != "none"  # the centroid of this solid tumour lies inside it
    position, sequence, label = viewer.text("#viewer-location").split(" · ")
    assert [float(c) for c in position.removesuffix(" mm").split(", ")] == pytest.approx(mm, abs=0.05)
    assert sequence.startswith("T1ce ") and label == f"label: {name}"
    save(viewer.page.locator("#viewer-section").screenshot(), "web_viewer_panel.png")


def test_volumes_beside_the_view_are_the_finding_s_stored_volumes(viewer):
    stored = viewer.finding.locate["volumes_ml"]
    for key in ("whole_tumour", "enhancing", "necrosis", "edema"):
        assert viewer.text(f"#volume-{key}") == f"{stored[key]:.1f} ml"
    assert stored["whole_tumour"] > 0


def test_keys_move_the_slice_of_the_active_view(viewer):
    viewer.choose("#layout", "multiplanar")
    viewer.page.focus("#viewer")
    axial, sagittal = viewer.slice_number("axial"), viewer.slice_number("sagittal")
    viewer.page.keyboard.press("ArrowUp")
    assert viewer.slice_number("axial") == axial + 1
    viewer.page.keyboard.press("PageDown")
    assert viewer.slice_number("axial") == axial - 9
    viewer.choose("#layout", "sagittal")
    viewer.page.focus("#viewer")
    viewer.page.keyboard.press("ArrowDown")
    assert (viewer.slice_number("sagittal"), viewer.slice_number("axial")) == (sagittal - 1, axial - 9)
    assert "active" in viewer.page.locator("#slice-sagittal").get_attribute("class")


def test_switching_sequence_keeps_the_position_and_downloads_each_image_once(viewer):
    viewer.choose("#layout", "multiplanar")
    viewer.page.focus("#viewer")
    viewer.page.keyboard.press("PageUp")  # away from the centroid the page started at
    before, slices = viewer.crosshair(), viewer.text("#viewer-slices")
    assert sorted(viewer.image_requests) == ["seg.nii.gz", "t1ce.nii.gz"]
    viewer.choose("#sequence", "flair")
    assert viewer.js(f"{NV}.volumes[0].name") == "flair.nii.gz"
    assert viewer.crosshair() == pytest.approx(before)
    assert viewer.text("#viewer-slices") == slices
    assert "FLAIR" in viewer.text("#viewer-location")
    viewer.choose("#sequence", "t1ce")
    viewer.choose("#sequence", "flair")
    assert sorted(viewer.image_requests) == ["flair.nii.gz", "seg.nii.gz", "t1ce.nii.gz"]
    assert viewer.crosshair() == pytest.approx(before)
    viewer.choose("#sequence", "t1ce")


def test_label_toggles_hide_a_compartment_in_fill_and_outline(viewer):
    edema = viewer.page.locator(".label-toggle[data-values='2']")
    shown = f"{NV}.volumes[1].img.includes(2)"
    assert viewer.js(shown)
    edema.uncheck()
    assert not viewer.js(shown)
    assert viewer.js(f"{NV}.volumes[1].img.some((v) => v > 0)")  # the other labels stay
    viewer.choose("#overlay-style", "outline")
    assert viewer.js(f"[{NV}.opts.atlasOutline, {NV}.volumes[1].opacity]") == [0.5, 0]
    viewer.screenshot("web_viewer_outline_without_edema.png")
    edema.check()
    assert viewer.js(shown)
    viewer.choose("#overlay-style", "fill")
    assert viewer.js(f"[{NV}.opts.atlasOutline, {NV}.volumes[1].opacity]") == [0, 0.5]


def test_sagittal_is_drawn_with_the_nose_on_the_left_as_in_the_report_figures(viewer):
    (sagittal,) = (v for v in VIEWS if v.name == "sagittal")
    assert sagittal.edge_letters()["left"] == "A"  # the figures draw anterior on the image's left
    viewer.choose("#layout", "sagittal")
    viewer.js(f"{NV}.scene.crosshairPos = {NV}.mm2frac({viewer.finding.locate['centroid_mm']}); {NV}.drawScene()")
    # A frontal tumour (with the crosshair through it) is anterior, so on the image's left of the brain.
    column, centre = tumour_column_is_left_of_centre(viewer.screenshot("web_viewer_sagittal.png"))
    assert column < centre, f"frontal tumour drawn at x={column}, right of the brain's centre x={centre}"


def test_orientation_letters_have_room_inside_the_canvas_and_apart(viewer):
    # NiiVue draws each view's edge letters inside the image's rectangle, along its edges.
    width, letter = viewer.js(f"[{NV}.gl.canvas.width, {NV}.fontPx]")
    for layout, count in (("multiplanar", 3), ("sagittal", 1)):
        viewer.choose("#layout", layout)
        tiles = sorted(viewer.js(f"{NV}.screenSlices.map((s) => Array.from(s.leftTopWidthHeight))"))
        assert len(tiles) == count
        gaps = [right[0] - (left[0] + left[2]) for left, right in pairwise(tiles)]
        margins = [tiles[0][0], width - (tiles[-1][0] + tiles[-1][2])]
        assert min(gaps + margins) >= letter, f"{layout} tiles {tiles} leave no room for letters {letter} px high"
        viewer.screenshot(f"web_viewer_{layout}.png")


def test_zoom_pan_window_presets_ruler_and_reset(viewer):
    viewer.choose("#layout", "axial")
    box = viewer.page.locator("#viewer").bounding_box()
    middle = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    viewer.choose("#tool", "pan")
    viewer.page.mouse.move(*middle)
    viewer.page.mouse.wheel(0, -300)
    assert viewer.js(f"{NV}.scene.pan2Dxyzmm[3]") > 1
    auto = viewer.js(f"[{NV}.volumes[0].cal_min, {NV}.volumes[0].cal_max]")
    viewer.choose("#window-preset", "narrow")
    narrow = viewer.js(f"[{NV}.volumes[0].cal_min, {NV}.volumes[0].cal_max]")
    assert narrow[1] - narrow[0] == pytest.approx((auto[1] - auto[0]) / 2)
    viewer.choose("#tool", "measurement")
    viewer.page.mouse.move(middle[0] - 60, middle[1])
    viewer.page.mouse.down()
    viewer.page.mouse.move(middle[0] + 60, middle[1], steps=5)
    viewer.page.mouse.up()
    distance = viewer.js(f"{NV}.document.completedMeasurements[0].distance")
    shown, unit, view = viewer.text("#rulers").split()
    assert distance > 0 and (float(shown), unit, view) == (pytest.approx(distance, abs=0.05), "mm", "(axial)")
    viewer.screenshot("web_viewer_zoomed_ruler.png")
    viewer.page.click("#reset-view")
    assert viewer.js(f"{NV}.scene.pan2Dxyzmm[3]") == 1
    assert viewer.js(f"[{NV}.volumes[0].cal_min, {NV}.volumes[0].cal_max]") == pytest.approx(auto)
    assert viewer.text("#rulers") == "" and viewer.js(f"{NV}.document.completedMeasurements.length") == 0
    viewer.choose("#tool", "crosshair")


def test_the_uncertainty_overlay_is_off_until_its_toggle_is_checked(viewer):
    # The oracle is certain everywhere; a map with a sure and an unsure part shows that values read as 0 to 1.
    seg = nib.load(viewer.finding.segmentation_path)
    tumour = np.asanyarray(seg.dataobj) > 0
    map_path = uncertainty_path(Path(viewer.finding.segmentation_path))
    write_uncertainty(np.where(tumour, 255, 0).astype(np.uint8), seg.affine, map_path)
    toggle = viewer.page.locator("#uncertainty-toggle")
    assert not toggle.is_checked() and viewer.js(f"{NV}.volumes.length") == 2
    assert "uncertainty.nii.gz" not in viewer.image_requests  # not even downloaded until asked for
    toggle.check()
    viewer.page.wait_for_function(f"() => {NV}.volumes.length === 3 && {NV}.volumes[2].opacity > 0")
    layer = f"{NV}.volumes[2]"
    shown = viewer.js(f"[{layer}.name, {layer}.colormap, {layer}.cal_min, {layer}.cal_max, {layer}.global_max]")
    assert shown == ["uncertainty.nii.gz", "hot", 0.1, 1, pytest.approx(1.0, abs=1e-3)]
    viewer.screenshot("web_viewer_uncertainty.png")
    toggle.uncheck()
    viewer.page.wait_for_function(f"() => {NV}.volumes[2].opacity === 0")
    toggle.check()
    viewer.page.wait_for_function(f"() => {NV}.volumes[2].opacity > 0")
    assert viewer.image_requests.count("uncertainty.nii.gz") == 1 and viewer.js(f"{NV}.volumes.length") == 3
    toggle.uncheck()
