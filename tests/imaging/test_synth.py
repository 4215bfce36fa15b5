"""The synthetic cohort: determinism, BraTS round trip, truth, tumour placement, contrast, speed."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage as ndi

from neurotriage.errors import UserError
from neurotriage.imaging import sri24
from neurotriage.imaging.io import load_case
from neurotriage.imaging.naming import BRATS2020, BRATS2023, SEQUENCES, split_name
from neurotriage.imaging.preview import radiological, save_montage, to_ras
from neurotriage.imaging.synth import (
    KINDS,
    LOBES,
    SynthCase,
    cohort_case_id,
    generate_case,
    write_case,
    write_cohort,
)
from neurotriage.imaging.synth_tissue import atlas_crop

FORCED = {
    "enhancing": {"kind": "enhancing", "lobe": "frontal_lobe", "hemisphere": "right"},
    "non_enhancing": {"kind": "non_enhancing", "lobe": "temporal_lobe", "hemisphere": "left"},
    "multifocal": {"kind": "multifocal", "lobe": "parietal_lobe", "hemisphere": "left"},
    "healthy": {"kind": "healthy"},
}


@pytest.fixture(scope="session")
def forced_cases() -> dict[str, SynthCase]:
    """One case of each kind, with lobe and hemisphere forced where there is a tumour."""
    return {name: generate_case(40 + i, f"SYN_{name}", **kw) for i, (name, kw) in enumerate(FORCED.items())}


@pytest.fixture(scope="session")
def cohorts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, list[dict]]]:
    """Cohorts on disk: seed 5 twice (2 cases with previews in 2 processes, then 1), seed 6 in BraTS 2023 naming."""
    root = tmp_path_factory.mktemp("synth")
    return {
        "a": (root / "a", write_cohort(root / "a", 2, 5, BRATS2020, preview=True, progress=False, workers=2)),
        "b": (root / "b", write_cohort(root / "b", 1, 5, BRATS2020, progress=False)),
        "c": (root / "c", write_cohort(root / "c", 1, 6, BRATS2023, progress=False)),
    }


def world_x(shape: tuple[int, ...], affine: np.ndarray) -> np.ndarray:
    """World (RAS) x of every voxel, from the affine."""
    i, j, k = np.indices(shape, dtype=np.float32)
    return affine[0, 0] * i + affine[0, 1] * j + affine[0, 2] * k + affine[0, 3]


@pytest.fixture(scope="session")
def midline_x() -> float:
    """World x of the SRI24 brain's mid-sagittal plane (mean x of the brain mask)."""
    return float(world_x(sri24.GRID_SHAPE, sri24.BRATS_AFFINE)[sri24.brain_mask()].mean())


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.suffix != ".png"}


def test_same_seed_gives_byte_identical_files(cohorts) -> None:
    first = files_of(cohorts["a"][0] / "SYN_0000")
    again = files_of(cohorts["b"][0] / "SYN_0000")
    assert sorted(first) == sorted(
        ["SYN_0000_flair.nii.gz", "SYN_0000_t1.nii.gz", "SYN_0000_t1ce.nii.gz", "SYN_0000_t2.nii.gz"]
        + ["SYN_0000_seg.nii.gz", "truth.json"]
    )
    assert first == again


def test_different_seeds_give_different_images(cohorts) -> None:
    a0 = load_case(cohorts["a"][0] / "SYN_0000")
    a1 = load_case(cohorts["a"][0] / "SYN_0001")
    c0 = load_case(cohorts["c"][0] / "SYN-0000")
    for key in SEQUENCES:
        assert not np.array_equal(a0.images[key], a1.images[key])
        assert not np.array_equal(a0.images[key], c0.images[key])


def test_cohort_truths_match_truth_json_and_case_ids(cohorts) -> None:
    for folder, truths in cohorts.values():
        assert not list(folder.glob(".*")), "a temporary folder was left behind"
        for truth in truths:
            on_disk = json.loads((folder / truth["case_id"] / "truth.json").read_text())
            assert on_disk == truth
            assert truth["kind"] in KINDS
    assert [t["case_id"] for t in cohorts["a"][1]] == ["SYN_0000", "SYN_0001"]
    assert cohorts["c"][1][0]["case_id"] == "SYN-0000" and cohorts["c"][1][0]["naming"] == "brats2023"


@pytest.mark.parametrize("naming", [BRATS2020, BRATS2023], ids=lambda n: n.name)
def test_written_case_reloads_with_labels_and_orientation(forced_cases, tmp_path, naming) -> None:
    case = forced_cases["enhancing"]
    case_id = cohort_case_id(naming, 7, 10)
    folder = write_case(SynthCase(case_id, case.images, case.seg, case.affine, case.truth), tmp_path, naming)
    loaded = load_case(folder)
    assert loaded.files.naming is naming
    assert loaded.axcodes == ("L", "P", "S")
    np.testing.assert_allclose(loaded.affine, sri24.BRATS_AFFINE)
    np.testing.assert_array_equal(loaded.seg, case.seg)
    for key in SEQUENCES:
        np.testing.assert_array_equal(loaded.images[key], case.images[key])
    raw = set(np.unique(np.asanyarray(nib.load(folder / naming.filename(case_id, "seg")).dataobj)).tolist())
    assert raw == {0, 1, 2, naming.enhancing_label}


def test_case_ids_parse_back_in_both_namings() -> None:
    assert cohort_case_id(BRATS2020, 3, 10) == "SYN_0003"
    assert cohort_case_id(BRATS2023, 3, 10) == "SYN-0003"
    assert cohort_case_id(BRATS2020, 3, 20000) == "SYN_00003"
    for naming in (BRATS2020, BRATS2023):
        case_id = cohort_case_id(naming, 12, 100)
        assert split_name(naming.filename(case_id, "seg")) == (naming, case_id, "seg")


@pytest.mark.parametrize("name", list(FORCED))
def test_images_are_brats_like(forced_cases, name) -> None:
    case = forced_cases[name]
    brain = case.images["flair"] > 0
    assert 1.0e6 < brain.sum() < 2.0e6
    np.testing.assert_array_equal(case.affine, sri24.BRATS_AFFINE)
    for key in SEQUENCES:
        image = case.images[key]
        assert image.dtype == np.int16 and image.shape == sri24.GRID_SHAPE
        np.testing.assert_array_equal(image > 0, brain)  # one skull-strip mask, background exactly 0
    assert case.seg.dtype == np.uint8 and not case.seg[~brain].any()


@pytest.mark.parametrize("name", list(FORCED))
def test_truth_volumes_equal_seg_counts(forced_cases, name) -> None:
    case = forced_cases[name]
    n = np.bincount(case.seg.ravel(), minlength=4)
    expected = {
        "whole_tumour": n[1] + n[2] + n[3],
        "tumour_core": n[1] + n[3],
        "enhancing": n[3],
        "necrosis": n[1],
        "edema": n[2],
    }
    assert case.truth["volumes_ml"] == {k: round(v / 1000, 3) for k, v in expected.items()}
    assert case.truth["enhancing"] == bool(n[3])
    assert json.loads(json.dumps(case.truth)) == case.truth


@pytest.mark.parametrize("name", ["enhancing", "non_enhancing", "multifocal"])
def test_tumour_lies_in_the_forced_lobe_and_world_side(forced_cases, midline_x, name) -> None:
    case, forced = forced_cases[name], FORCED[name]
    assert (case.truth["kind"], case.truth["lobe"], case.truth["hemisphere"]) == tuple(forced.values())
    labels, _ = ndi.label(case.seg > 0)
    primary = labels == np.bincount(labels.ravel())[1:].argmax() + 1
    lobe = sri24.template_and_masks()["lobes"] == sri24.LOBE_LABELS[forced["lobe"]]
    offset = world_x(sri24.GRID_SHAPE, case.affine) - midline_x
    side = offset > 0 if forced["hemisphere"] == "right" else offset < 0
    core = primary & ((case.seg == 1) | (case.seg == 3))
    assert (primary & lobe & side).sum() >= 0.7 * primary.sum()
    assert (core & lobe & side).sum() >= 0.7 * core.sum()
    centroid_x = case.truth["lesions"][0]["centroid_mm"][0]
    assert (centroid_x > midline_x) == (forced["hemisphere"] == "right")


# SHA-256 of each forced case's four sequences, segmentation and truth, as the v5 generator made them
# before generator versions existed: the cohorts of default models v5 and v8 must stay reproducible.
V5_DIGESTS = {
    "enhancing": "b9abb4a67ccbd033fbdf0c59bf42aa1264b62007584f06740ffd7a42c0245235",
    "non_enhancing": "8de1eca0cc5e9d7bb5a37577d4879a7569db291732e09d9b94c21d5038a55b90",
    "multifocal": "65d7f54556443de7728654d03b942a4e097ebe9c354e9e5a5d24ae8ece621297",
    "healthy": "98e2002d6d3ee456c571af7ff3455e2bfeada16ba73a593da80086feec664c40",
}


def case_digest(case: SynthCase) -> str:
    """SHA-256 over a case's sequences (in SEQUENCES order), its segmentation and its truth."""
    digest = hashlib.sha256()
    for key in SEQUENCES:
        digest.update(np.ascontiguousarray(case.images[key]).tobytes())
    digest.update(case.seg.tobytes())
    digest.update(json.dumps(case.truth, sort_keys=True).encode())
    return digest.hexdigest()


@pytest.mark.parametrize("name", list(FORCED))
def test_generator_v5_cases_are_unchanged(forced_cases, name) -> None:
    assert case_digest(forced_cases[name]) == V5_DIGESTS[name]


def test_healthy_case_has_no_tumour(forced_cases) -> None:
    case = forced_cases["healthy"]
    assert not case.seg.any()
    assert case.truth["lobe"] is None and case.truth["hemisphere"] is None and case.truth["lesions"] == []
    assert not case.truth["multifocal"] and not case.truth["enhancing"]


def test_non_enhancing_case_has_no_enhancing_label(forced_cases) -> None:
    seg = forced_cases["non_enhancing"].seg
    assert not (seg == 3).any()
    assert (seg == 1).any() and (seg == 2).any()


def test_multifocal_case_has_separate_foci_in_one_hemisphere(forced_cases) -> None:
    case = forced_cases["multifocal"]
    _, n = ndi.label(case.seg > 0)
    assert case.truth["multifocal"] and n >= 2 and len(case.truth["lesions"]) >= 2
    assert {lesion["hemisphere"] for lesion in case.truth["lesions"]} == {"left"}
    assert all(lesion["lobe"] in LOBES for lesion in case.truth["lesions"])


def tissue_medians(case: SynthCase) -> dict[str, dict[str, float]]:
    """Median intensity per sequence in atlas WM, cortical GM, ventricle CSF, oedema and enhancing."""
    atlas = sri24.template_and_masks()
    template = atlas["template"].astype(np.float32)
    healthy = (case.seg == 0) & (case.images["flair"] > 0)
    # Cores of each class, well away from borders, so the per-case deformation cannot move them out.
    masks = {
        "wm": ndi.binary_erosion(template > 0.95, iterations=2) & healthy,
        "gm": atlas["cortex"] & (template > 0.5) & (template < 0.65) & healthy,
        "csf": ndi.binary_erosion((atlas["lobes"] == sri24.LOBE_LABELS["ventricles"]) & (template < 0.2)) & healthy,
        "edema": case.seg == 2,
        "enhancing": case.seg == 3,
    }
    return {key: {t: float(np.median(case.images[key][m])) for t, m in masks.items()} for key in SEQUENCES}


def test_contrast_follows_mr_physics(forced_cases) -> None:
    med = tissue_medians(forced_cases["enhancing"])
    assert med["t1"]["wm"] > med["t1"]["gm"] > med["t1"]["csf"]
    assert med["t2"]["csf"] > med["t2"]["gm"] > med["t2"]["wm"]
    assert med["flair"]["csf"] < 0.5 * med["flair"]["wm"]  # CSF suppressed
    assert med["flair"]["edema"] > 1.4 * med["flair"]["wm"]
    assert med["t2"]["edema"] > 1.5 * med["t2"]["wm"]
    assert med["t1ce"]["enhancing"] > 1.4 * med["t1ce"]["wm"]
    assert med["t1ce"]["enhancing"] > 1.4 * med["t1"]["enhancing"] * med["t1ce"]["wm"] / med["t1"]["wm"]


def test_preview_png_is_written(cohorts) -> None:
    png = cohorts["a"][0] / "SYN_0000" / "preview.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


def test_montage_shows_patient_left_on_image_right(tmp_path) -> None:
    volume = np.zeros((40, 30, 20), np.float32)
    volume[5:15, 10:20, 8:12] = 1.0  # low i: with the BraTS affine (x = -i) that is the patient's right
    ras = to_ras(volume, sri24.BRATS_AFFINE)
    plane = radiological(ras, "axial", 10)
    columns = np.nonzero(plane.any(axis=0))[0]
    assert columns.max() < plane.shape[1] / 2  # patient's right shows on the image's left
    images = {k: volume * 100 for k in SEQUENCES}
    path = save_montage(images, (volume > 0).astype(np.uint8), sri24.BRATS_AFFINE, tmp_path / "m.png", "t")
    assert path.exists() and not list(tmp_path.glob(".*"))


@pytest.mark.parametrize(
    "kwargs",
    [{"kind": "cyst"}, {"lobe": "cerebellum"}, {"hemisphere": "up"}, {"kind": "healthy", "lobe": "insula"}],
)
def test_bad_choices_are_user_errors(kwargs) -> None:
    with pytest.raises(UserError):
        generate_case(1, "SYN_0001", **kwargs)


def test_bad_cohort_arguments_are_user_errors(tmp_path) -> None:
    with pytest.raises(UserError):
        write_cohort(tmp_path, 0, 1, progress=False)
    with pytest.raises(UserError):
        write_cohort(tmp_path, 1, -1, progress=False)
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_a_case_takes_at_most_three_seconds(tmp_path) -> None:
    atlas_crop()  # the once-per-process atlas preparation is not part of a case
    # CPU time of this process, best of two: other jobs sharing the 2 cores (CI, a training run)
    # stretch wall time but not the work a case costs. Generation runs single-threaded.
    times = []
    for run in range(2):
        start = time.process_time()
        write_cohort(tmp_path / str(run), 1, 123, progress=False)
        times.append(time.process_time() - start)
    assert min(times) <= 3.0, times


def test_oedema_centre_moves_off_the_core_within_its_limit() -> None:
    from neurotriage.imaging.synth_tumour import EDEMA_OFFSET, _edema_centre

    rng, centre, reach = np.random.default_rng(0), np.array([50.0, 60.0, 40.0]), 30.0
    shifts = np.array([np.linalg.norm(_edema_centre(rng, centre, reach) - centre) for _ in range(200)])
    assert shifts.max() <= EDEMA_OFFSET * reach + 1e-9
    assert shifts.max() > 0.8 * EDEMA_OFFSET * reach  # one-sided oedema really occurs


def test_oedema_fades_out_beyond_its_label_like_real_oedema(forced_cases) -> None:
    case = forced_cases["enhancing"]
    flair, lesion = case.images["flair"].astype(np.float32), case.seg > 0
    outside = ndi.distance_transform_edt(~lesion)
    white = ndi.binary_erosion(sri24.template_and_masks()["template"] > 0.95, iterations=2) & (outside > 15)
    wm = np.median(flair[white])
    tissue = (sri24.template_and_masks()["template"] > 0.4) & (flair > 0)

    def ring(lo: float, hi: float) -> float:
        return float(np.median(flair[tissue & (outside > lo) & (outside <= hi)])) / wm

    edge = float(np.median(flair[lesion & ~ndi.binary_erosion(lesion)])) / wm
    # An unlabelled halo: brighter than normal 1-2 mm out, dimmer than the labelled edge, gone by 8 mm.
    assert edge > ring(0, 2) > ring(2, 4) > 1.05 * ring(8, 12)


def test_oedema_has_denser_patches_darker_on_t1_and_brighter_on_t2(forced_cases) -> None:
    case = forced_cases["enhancing"]
    oedema = ndi.binary_erosion(case.seg == 2, iterations=3)
    t1, t2 = (ndi.gaussian_filter(case.images[k].astype(np.float32), 1.5) for k in ("t1", "t2"))
    ratio = np.log(t1[oedema] / t2[oedema])
    # Bias, texture and scaling cancel in the T1/T2 ratio; only the dense patches move it (0.08 without them).
    assert np.percentile(ratio, 95) - np.percentile(ratio, 5) > 0.15
