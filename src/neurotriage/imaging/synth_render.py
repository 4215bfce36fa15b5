"""The four sequences of a generator-v9 case, and the FLAIR excess its oedema label is read from.

As v5's `synth_contrast.render`, but the intensities and the acquisition come from a `Contrast`
draw, the oedema is blended in by its fall-off field (no separate unlabelled halo), and the
noise-free FLAIR excess of the lesions (in white-matter units, through the FLAIR's own slice
profile) comes back with the images so the oedema can be labelled where it is visible.
"""

from __future__ import annotations

import numpy as np

from neurotriage.imaging.naming import SEQUENCES
from neurotriage.imaging.synth_contrast import (
    DENSE_OEDEMA,
    DENSE_SPACING,
    EDEMA_SLOT,
    LESION,
    TEXTURE,
    Blend,
    LesionLayer,
    add_lesions,
    blend,
    scanner,
    to_int16,
)
from neurotriage.imaging.synth_draws import FLAIR, Contrast
from neurotriage.imaging.synth_fields import smooth_field
from neurotriage.imaging.synth_oedema import OedemaField
from neurotriage.imaging.synth_slices import thick_slices
from neurotriage.imaging.synth_tissue import Anatomy
from neurotriage.imaging.synth_tumour import PAINT_EDEMA


def _layer(rng: np.random.Generator, codes: np.ndarray, field: OedemaField, contrast: Contrast) -> LesionLayer:
    """The lesions' compartments in the field's box; the oedema's weight is the fall-off field."""
    local = codes[field.box]
    grain = smooth_field(rng, local.shape, 4.0)
    hits = [field.weight > 0 if code == PAINT_EDEMA else local == code for code in LESION]
    weights = [
        field.weight[h] if code == PAINT_EDEMA else np.ones(int(h.sum()), np.float32)
        for code, h in zip(LESION, hits, strict=True)
    ]
    textures = [1 + np.float32(TEXTURE[code]) * grain[h] for code, h in zip(LESION, hits, strict=True)]
    dense = np.clip(smooth_field(rng, local.shape, rng.uniform(*DENSE_SPACING)), 0, 1)[hits[EDEMA_SLOT]]
    dense_shift = np.float32(rng.uniform(0.5, 1.0) * contrast.dense_scale) * np.array(DENSE_OEDEMA, np.float32)
    return LesionLayer(field.box, hits, weights, textures, contrast.lesion.astype(np.float32), dense, dense_shift)


def _tissue_image(anatomy: Anatomy, values: np.ndarray) -> np.ndarray:
    image = anatomy.wm * np.float32(values[0])
    image += anatomy.gm * np.float32(values[1])
    image += anatomy.csf * np.float32(values[2])
    return image


def _bias(rng: np.random.Generator, shape: tuple[int, ...], amplitude: float) -> np.ndarray:
    """A smooth multiplicative shading around 1: exp(amplitude x a unit-variance field 60 voxels wide)."""
    return np.exp(smooth_field(rng, shape, 60.0) * np.float32(amplitude))


def render(
    rng: np.random.Generator,
    anatomy: Anatomy,
    codes: np.ndarray,
    field: OedemaField | None,
    blends: list[Blend],
    contrast: Contrast,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The four sequences (int16) and the lesions' noise-free FLAIR excess over normal tissue (float32,
    white-matter units, 0 where there is no lesion)."""
    layer = None if field is None else _layer(rng, codes, field, contrast)
    # One receive coil for all four sequences gives one bias pattern; randomised draws give each its own.
    shared = _bias(rng, codes.shape, contrast.bias[0]) if contrast.shared_bias else None
    out, excess = {}, np.zeros(codes.shape, np.float32)
    for s, name in enumerate(SEQUENCES):
        image = _tissue_image(anatomy, contrast.tissue[:, s])
        for b in blends:
            blend(image, b.index, b.weight, contrast.lookalike[b.name][s])
        if layer is not None:
            before = image[layer.box].copy() if s == FLAIR else None
            add_lesions(image, layer, s)
            if s == FLAIR:
                excess[layer.box] = (image[layer.box] - before) / np.float32(contrast.tissue[0, s])
        bias = shared if shared is not None else _bias(rng, codes.shape, contrast.bias[s])
        image = scanner(rng, image, bias, contrast.noise, contrast.blur)
        stack = contrast.stacks[s]
        if stack is not None:
            image = thick_slices(image, stack)
            if s == FLAIR:
                excess = thick_slices(excess, stack)
        out[name] = to_int16(image, contrast.scale[s], anatomy.brain)
    return out, excess
