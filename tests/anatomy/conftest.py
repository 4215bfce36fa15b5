"""Hand-made tumours placed in atlas regions on the BraTS grid."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from neurotriage.anatomy import atlas as anatomy_atlas
from neurotriage.imaging.sri24 import BRATS_AFFINE, GRID_SHAPE

NECROTIC, EDEMA, ENHANCING = 1, 2, 3


def world_x() -> np.ndarray:
    """World x (mm) of every index along the first BraTS axis, from the header."""
    return BRATS_AFFINE[0, 0] * np.arange(GRID_SHAPE[0]) + BRATS_AFFINE[0, 3]


def side_mask(side: str, clearance_mm: float = 0.0) -> np.ndarray:
    """Voxels on the patient's `side` of the atlas midline, at least `clearance_mm` from it."""
    x, mid = world_x(), float(anatomy_atlas.region_atlas()["midline_x"])
    along = x < mid - clearance_mm if side == "left" else x > mid + clearance_mm
    return np.broadcast_to(along[:, None, None], GRID_SHAPE)


@functools.cache
def deepest_voxel(name: str, side: str) -> tuple[int, int, int]:
    """The voxel of an atlas region (or eloquent area) on one side that lies deepest inside it."""
    from scipy import ndimage

    volume = anatomy_atlas.region_atlas()
    if name in anatomy_atlas.ELOQUENT:
        mask = (volume["eloquent"] & (1 << anatomy_atlas.ELOQUENT.index(name))) > 0
    else:
        mask = volume["regions"] == anatomy_atlas.REGION_VALUES[name]
    mask = mask & side_mask(side, clearance_mm=3.0)
    box = ndimage.find_objects(mask.astype(np.uint8))[0]
    depth = ndimage.distance_transform_edt(np.pad(mask[box], 1))[1:-1, 1:-1, 1:-1]
    local = np.unravel_index(int(depth.argmax()), depth.shape)
    return tuple(int(b.start + i) for b, i in zip(box, local, strict=True))


def ball(centre: tuple[int, int, int], radius: float, seg: np.ndarray | None = None) -> np.ndarray:
    """A glioma-like ball: oedema shell, enhancing rim, necrotic centre (internal labels)."""
    seg = np.zeros(GRID_SHAPE, np.uint8) if seg is None else seg
    reach = int(np.ceil(radius))
    box = tuple(slice(max(c - reach, 0), c + reach + 1) for c in centre)
    i, j, k = np.ogrid[box]
    r = np.sqrt((i - centre[0]) ** 2 + (j - centre[1]) ** 2 + (k - centre[2]) ** 2)
    local = seg[box]  # a view: painting it paints seg
    local[r <= radius] = EDEMA
    local[r <= 0.6 * radius] = ENHANCING
    local[r <= 0.3 * radius] = NECROTIC
    return seg


@pytest.fixture(scope="session")
def anatomy() -> dict[str, np.ndarray]:
    """The cached anatomy atlas (built once per machine)."""
    return anatomy_atlas.region_atlas()


@pytest.fixture(scope="session")
def right_frontal() -> np.ndarray:
    """A 10 mm ball deep in the right frontal lobe."""
    return ball(deepest_voxel("frontal_lobe", "right"), 10)


@pytest.fixture(scope="session")
def left_temporal() -> np.ndarray:
    """A 9 mm ball deep in the left temporal lobe."""
    return ball(deepest_voxel("temporal_lobe", "left"), 9)


@pytest.fixture(scope="session")
def deepest():
    """deepest_voxel(name, side): a voxel deep inside a region or eloquent area on one side."""
    return deepest_voxel


@pytest.fixture(scope="session")
def make_ball():
    """ball(centre, radius, seg=None): a glioma-like ball on the BraTS grid."""
    return ball


def locate_doc(*args, **kwargs) -> dict:
    """locate() as the JSON document `locate --json` prints (the keys these tests check)."""
    from neurotriage.anatomy.locate import locate

    return locate(*args, **kwargs).model_dump(mode="json")


def locate_file_doc(*args, **kwargs) -> dict:
    """locate_file() as its JSON document."""
    from neurotriage.anatomy.locate import locate_file

    return locate_file(*args, **kwargs).model_dump(mode="json")
