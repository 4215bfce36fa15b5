"""MR contrast for the synthetic cohort, and what a scanner and BraTS preprocessing add to it.

Each voxel mixes tissue intensities (white matter = 1) by its WM / GM / CSF membership, then
blends in tumour compartments and bright look-alikes that are NOT tumour, so a model cannot
learn "bright means tumour". A bias field, noise, blur and per-case scaling finish the case.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from neurotriage.imaging.naming import SEQUENCES
from neurotriage.imaging.sri24 import BRATS_AFFINE
from neurotriage.imaging.synth_fields import bounding_box, smooth_field, smooth_fields
from neurotriage.imaging.synth_tissue import CORTEX, FALX, VENTRICLES, Anatomy
from neurotriage.imaging.synth_tumour import PAINT_EDEMA, PAINT_ENHANCING, PAINT_NECROSIS, PAINT_SOLID

# Intensities relative to white matter, in SEQUENCES order: flair, t1, t1ce, t2.
TISSUE = {
    "wm": (1.0, 1.0, 1.0, 1.0),
    "gm": (1.28, 0.72, 0.78, 1.55),
    "csf": (0.2, 0.28, 0.30, 5.0),
}
# Per-compartment (low, high) ranges, drawn independently per case and sequence: real tumours vary
# that much between patients. Enhancement on T1ce reaches down to 1.2x white matter, far dimmer than a
# textbook ring. Necrosis may hold blood products, bright on T1 before contrast as well as after, and
# reaches down to T2 1.2x. Oedema reaches the top of the FLAIR range, as bright as any core; solid
# tumour stands apart mainly by darker T1 and brighter T2 (the ranges overlap, as between patients).
LESION = {
    PAINT_NECROSIS: ((0.8, 2.0), (0.35, 1.1), (0.4, 1.1), (1.2, 5.0)),
    PAINT_EDEMA: ((1.6, 2.6), (0.65, 0.92), (0.62, 0.9), (1.6, 3.5)),
    PAINT_ENHANCING: ((1.2, 2.2), (0.7, 1.0), (1.2, 2.5), (1.5, 3.0)),
    PAINT_SOLID: ((1.4, 2.5), (0.45, 0.78), (0.45, 0.85), (2.2, 4.5)),
}
EDEMA_SLOT = list(LESION).index(PAINT_EDEMA)  # the oedema's place in LESION order (hits, weights, values)
TEXTURE = {
    PAINT_NECROSIS: 0.18,
    PAINT_EDEMA: 0.05,
    PAINT_ENHANCING: 0.16,
    PAINT_SOLID: 0.06,
}  # heterogeneity within each
# Real oedema is not uniform: where it holds most water it is darker on T1 and brighter on T2. Dense
# patches scale the oedema by up to these factors per sequence (flair, t1, t1ce, t2), enough to reach
# solid tumour's T1 and T2, so darker T1 with brighter T2 alone does not mark tumour core: next to
# enhancement, only the ring and what it encloses is core.
DENSE_OEDEMA = (0.1, -0.2, -0.15, 0.35)
DENSE_SPACING = (6.0, 18.0)  # voxels: from fingers a few mm across to broad dense regions
# Real oedema fades out over a few millimetres beyond the line an annotator draws, so an unlabelled
# halo fades from HALO_START of the oedema's contrast 1 mm out, by exp(-d / decay): brightening beside
# a lesion is not all oedema.
HALO_START = (0.3, 0.55)
HALO_DECAY_MM = (1.0, 2.5)
HALO_REACH = 8  # voxels (1 mm): where the faintest halo falls below the blend floor
# Bright (on some sequence) but not tumour: the traps a model trained on plain blobs falls into.
LOOKALIKE = {
    "periventricular caps": (1.9, 0.82, 0.84, 2.2),
    "white-matter hyperintensity": (2.1, 0.78, 0.80, 2.3),
    "dura and falx": (1.5, 0.85, 1.9, 0.6),
    "scalp fat": (2.0, 2.2, 2.2, 1.9),
    "vessel": (0.6, 0.7, 3.2, 0.4),
    "choroid plexus": (1.7, 0.9, 2.4, 1.6),
    "cortical FLAIR ribbon": (1.7, 0.72, 0.78, 1.6),
}
WM_LEVEL = (900.0, 900.0, 1100.0, 700.0)  # typical white-matter values in BraTS files


@dataclass
class Blend:
    """A sparse look-alike: flat crop indices, blend weights in (0, 1], and its name."""

    name: str
    index: np.ndarray
    weight: np.ndarray


def sparse(name: str, weight: np.ndarray, floor: float = 0.03) -> Blend:
    """Keep only the voxels a weight map really touches."""
    index = np.flatnonzero(weight > floor)
    return Blend(name, index, weight.ravel()[index].astype(np.float32))


def _ap_axis() -> int:
    """Array axis running anterior-posterior in the BraTS header (from the affine, not by habit)."""
    return int(np.argmax(np.abs(BRATS_AFFINE[1, :3])))


def ventricle_lookalikes(rng: np.random.Generator, anatomy: Anatomy) -> list[Blend]:
    """A thin periventricular lining, FLAIR caps at the horn tips, and choroid plexus in the atria."""
    ventricles = anatomy.code & VENTRICLES > 0
    box = bounding_box(ventricles, 8)
    vent = ventricles[box]
    axis = _ap_axis()
    ap = np.indices(vent.shape, dtype=np.float32)[axis]
    span = np.flatnonzero(vent.any(axis=tuple(a for a in range(3) if a != axis)))
    centre, half = span.mean(), (span[-1] - span[0]) / 2 + 1
    horn = np.clip((np.abs(ap - centre) / half - 0.4) / 0.4, 0, 1) ** 2  # 0 on the body, 1 at the tips
    lining = np.clip(ndi.gaussian_filter(vent.astype(np.float32), 1.0, truncate=2.5) * 2.5, 0, 1) * 0.3
    halo = np.clip(ndi.gaussian_filter(vent.astype(np.float32), 3.0, truncate=2.0) * 5.0, 0, 1)
    patchy = np.clip(0.7 + 0.5 * smooth_field(rng, vent.shape, 8.0), 0, 1)
    caps = np.zeros(anatomy.code.shape, np.float32)
    caps[box] = np.maximum(lining, halo * horn * patchy) * ~vent * rng.uniform(0.5, 1.0)
    # Choroid plexus: blobs in the posterior half of the ventricles (the atria).
    posterior = (ap - centre) * np.sign(-BRATS_AFFINE[1, axis]) > 0
    choroid = np.zeros_like(caps)
    choroid[box] = vent * posterior * np.clip(smooth_field(rng, vent.shape, 5.0) - 0.3, 0, 1)
    return [sparse("periventricular caps", caps), sparse("choroid plexus", choroid)]


def white_matter_spots(rng: np.random.Generator, anatomy: Anatomy, codes: np.ndarray) -> Blend:
    """Small FLAIR-bright white-matter spots (small-vessel disease), away from any tumour."""
    deep = (anatomy.wm > 0.95) & (codes == 0) & anatomy.brain
    candidates = np.flatnonzero(deep)
    count = int(rng.poisson(rng.uniform(0, 10))) if candidates.size else 0
    weight = np.zeros(anatomy.wm.shape, np.float32)
    for flat in rng.choice(candidates, size=count, replace=False) if count else []:
        centre = np.array(np.unravel_index(flat, weight.shape))
        sigma = rng.uniform(0.8, 2.2, 3)
        lo, hi = np.maximum(centre - 6, 0), np.minimum(centre + 7, weight.shape)
        axes = np.ogrid[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))]
        blob = np.exp(-sum(((a - c) / s) ** 2 for a, c, s in zip(axes, centre, sigma, strict=True)) / 2)
        box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        weight[box] = np.maximum(weight[box], np.clip(blob * 1.4, 0, 1) * (codes[box] == 0))
    return sparse("white-matter hyperintensity", weight)


def surface_lookalikes(rng: np.random.Generator, anatomy: Anatomy) -> list[Blend]:
    """Dura and falx, stripping leftovers (scalp fat), vessels, and the bright cortical ribbon."""
    brain = anatomy.brain
    rim = brain & ~ndi.binary_erosion(brain, iterations=2)
    fields = smooth_fields(rng, brain.shape, 12.0, count=2)
    patches = np.clip(0.6 * fields[0] - 0.1, 0, 1)
    dura = rim * patches * rng.uniform(0.5, 1.0)
    falx = (anatomy.code & FALX > 0) * np.clip(0.5 + 0.4 * fields[0], 0.2, 0.9) * rng.uniform(0.4, 1.0)
    dura = np.maximum(dura, falx)
    fat = rim * (fields[1] > rng.uniform(1.6, 3.0)) * 0.9
    # Vessels: where two smooth fields both cross zero, a tube network; kept to CSF and the surface.
    tubes = smooth_fields(rng, brain.shape, 10.0, count=2).reshape(2, -1)
    where = np.flatnonzero((anatomy.csf > 0.05) | rim)
    tube = np.exp(-(tubes[0, where] ** 2 + tubes[1, where] ** 2) / np.float32(2 * 0.07**2))
    vessels = np.zeros(brain.shape, np.float32)
    vessels.reshape(-1)[where] = tube * np.clip(anatomy.csf.reshape(-1)[where] * 1.5 + rim.reshape(-1)[where], 0, 1)
    vessels *= np.float32(rng.uniform(0.5, 1.0))
    # Real FLAIR cortex is often bright along the whole convexity: a strong, patchy ribbon teaches that.
    ribbon_field = np.clip(smooth_field(rng, brain.shape, 10.0) + 0.5, 0, 1)
    ribbon = (anatomy.code & CORTEX > 0) * anatomy.gm * ribbon_field * np.float32(rng.uniform(0.2, 0.8))
    return [
        sparse("dura and falx", dura),
        sparse("scalp fat", fat),
        sparse("vessel", vessels),
        sparse("cortical FLAIR ribbon", ribbon),
    ]


def _tissue_image(anatomy: Anatomy, seq: int, jitter: np.ndarray) -> np.ndarray:
    wm, gm, csf = (np.float32(TISSUE[t][seq] * jitter[i]) for i, t in enumerate(("wm", "gm", "csf")))
    image = anatomy.wm * wm
    image += anatomy.gm * gm
    image += anatomy.csf * csf
    return image


def blend(image: np.ndarray, index: np.ndarray, weight: np.ndarray, value: float) -> None:
    """Pull the voxels at flat `index` towards `value` by `weight` (in place)."""
    flat = image.reshape(-1)
    flat[index] += weight * (np.float32(value) - flat[index])


@dataclass
class LesionLayer:
    """Tumour voxels of a case, and the unlabelled halo around them, ready to blend into each sequence."""

    box: tuple[slice, ...]  # bounding box of the lesions, grown by HALO_REACH
    hits: list[np.ndarray]  # per LESION code, then the halo: boolean mask in the box
    weights: list[np.ndarray]  # per hit mask: blend weight of those voxels
    textures: list[np.ndarray]  # per hit mask: intensity texture of those voxels, around 1
    values: np.ndarray  # (len(hits), len(SEQUENCES)) this case's intensity of each compartment; halo = oedema
    dense: np.ndarray  # per oedema voxel: how dense the oedema is there, in [0, 1]
    dense_shift: np.ndarray  # per sequence: this case's relative change of the densest oedema


def lesion_layer(
    rng: np.random.Generator, codes: np.ndarray, strength: np.ndarray, tissue: np.ndarray
) -> LesionLayer | None:
    """Blend weights per compartment: full in the core, fading towards the oedema's edge and beyond it."""
    if not codes.any():
        return None
    box = bounding_box(codes > 0, HALO_REACH)
    local = codes[box]
    grain = smooth_field(rng, local.shape, 4.0)
    weight = np.where(local == PAINT_EDEMA, 0.6 + 0.4 * strength[box], 1.0).astype(np.float32)
    hits = [local == code for code in LESION]
    ranges = np.array(list(LESION.values()), np.float32)  # (compartment, sequence, low/high)
    values = rng.uniform(ranges[..., 0], ranges[..., 1]).astype(np.float32)
    textures = [1 + np.float32(TEXTURE[code]) * grain[h] for code, h in zip(LESION, hits, strict=True)]
    weights = [weight[h] for h in hits]
    halo, halo_weight = _halo(rng, local == 0, tissue[box])
    hits.append(halo)
    weights.append(halo_weight)
    textures.append(1 + np.float32(TEXTURE[PAINT_EDEMA]) * grain[halo])
    values = np.vstack([values, values[EDEMA_SLOT]])
    dense = np.clip(smooth_field(rng, local.shape, rng.uniform(*DENSE_SPACING)), 0, 1)[hits[EDEMA_SLOT]]
    dense_shift = np.float32(rng.uniform(0.5, 1.0)) * np.array(DENSE_OEDEMA, np.float32)
    return LesionLayer(box, hits, weights, textures, values, dense, dense_shift)


def _halo(rng: np.random.Generator, outside: np.ndarray, tissue: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Voxels just outside the lesions and their fading blend weight; kept out of CSF by `tissue`."""
    distance = ndi.distance_transform_edt(outside).astype(np.float32)  # 1 = touching a lesion voxel
    start, decay = rng.uniform(*HALO_START), rng.uniform(*HALO_DECAY_MM)
    weight = np.float32(start) * np.exp((1 - distance) / np.float32(decay)) * tissue
    halo = outside & (weight > 0.03)
    return halo, weight[halo]


def add_lesions(image: np.ndarray, layer: LesionLayer, seq: int) -> None:
    """Blend the lesions' compartments into one sequence's image (in place)."""
    local = image[layer.box]
    for k, hit in enumerate(layer.hits):
        target = layer.textures[k] * layer.values[k, seq]
        if k == EDEMA_SLOT:
            target *= 1 + layer.dense_shift[seq] * layer.dense
        local[hit] += layer.weights[k] * (target - local[hit])


def scanner(rng: np.random.Generator, image: np.ndarray, bias: np.ndarray, noise: float, blur: float) -> np.ndarray:
    """Bias field, noise and blur, as acquisition and BraTS resampling leave them."""
    image *= bias
    # Uniform noise is 4x cheaper to draw; after the blur it is close to Gaussian anyway.
    grain = rng.random(image.shape, dtype=np.float32)
    grain -= np.float32(0.5)
    image += grain * np.float32(noise * np.sqrt(12))
    # A 3-tap kernel is enough for sigma < 1 voxel, and half the cost of the default 9 taps.
    return ndi.gaussian_filter(image, blur, radius=1)


def to_int16(image: np.ndarray, scale: float, brain: np.ndarray) -> np.ndarray:
    """Scale to BraTS-like values; background exactly 0, brain at least 1."""
    image *= np.float32(scale)
    np.clip(image, 1, 32000, out=image)
    image *= brain
    return np.rint(image, out=image).astype(np.int16)


def render(
    rng: np.random.Generator, anatomy: Anatomy, codes: np.ndarray, strength: np.ndarray, blends: list[Blend]
) -> dict[str, np.ndarray]:
    """The four sequences as int16 arrays: contrast, look-alikes, lesions, bias, noise, blur, scale."""
    jitter = np.exp(rng.normal(0, 0.07, (3, len(SEQUENCES)))).astype(np.float32)
    layer = lesion_layer(rng, codes, strength, 1 - anatomy.csf)
    # One receive coil for all four sequences, so one bias pattern (computed once: exp is not cheap).
    bias = np.exp(smooth_field(rng, codes.shape, 60.0) * np.float32(rng.uniform(0.06, 0.22)))
    noise, blur = rng.uniform(0.03, 0.08), rng.uniform(0.45, 0.85)
    scale = np.array(WM_LEVEL) * np.exp(rng.uniform(-0.5, 0.5, len(SEQUENCES)))
    out = {}
    for s, name in enumerate(SEQUENCES):
        image = _tissue_image(anatomy, s, jitter[:, s])
        for b in blends:
            blend(image, b.index, b.weight, LOOKALIKE[b.name][s])
        if layer is not None:
            add_lesions(image, layer, s)
        out[name] = to_int16(scanner(rng, image, bias, noise, blur), scale[s], anatomy.brain)
    return out
