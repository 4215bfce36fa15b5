"""One case's contrast and acquisition (generator v9): physics-based, or randomised SynthSeg-style.

Physics-based draws keep v5's MR contrast (tissue, tumour compartments and look-alikes relative
to white matter) and add a thick-slice acquisition of all four sequences in some cases. In a
non-enhancing tumour the core is the T2-bright solid mass and the oedema a FLAIR-only halo.

Randomised draws (after SynthSeg: Billot et al., Medical Image Analysis 2023) give every tissue
class and look-alike a random intensity per sequence, each sequence its own resolution and bias
field, so a network must read shape and context rather than one scanner's contrast. Only the
contrasts that define a label are kept: oedema is FLAIR-bright, enhancement T1ce-bright and
brighter than on T1, necrosis and solid core do not enhance, and solid core is T2-brighter than
its oedema.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurotriage.imaging.naming import SEQUENCES
from neurotriage.imaging.synth_contrast import LESION, LOOKALIKE, TISSUE, WM_LEVEL
from neurotriage.imaging.synth_slices import SliceStack, axial_axis
from neurotriage.imaging.synth_tumour import PAINT_EDEMA, PAINT_ENHANCING, PAINT_NECROSIS, PAINT_SOLID

FLAIR, T1, T1CE, T2 = (SEQUENCES.index(k) for k in ("flair", "t1", "t1ce", "t2"))
SLOT = {code: i for i, code in enumerate(LESION)}  # row of each compartment in Contrast.lesion
# A non-enhancing tumour's oedema: FLAIR-bright, close to normal on T2 and T1 (flair, t1, t1ce, t2).
HALO = ((1.3, 2.2), (0.78, 0.95), (0.75, 0.95), (1.1, 1.7))
# Physics-based acquisition: in this share of cases all four sequences are 2D, with slices this many
# mm thick, along the axial axis in AXIAL_SHARE of them (else coronal or sagittal).
THICK_SHARE = 0.35
THICK_MM = (3, 6)
AXIAL_SHARE = 0.7
# Randomised draws: intensities relative to white matter, log-uniform in these ranges.
RANDOM_TISSUE = (0.15, 4.0)
RANDOM_LESION = (0.3, 3.0)
RANDOM_BRIGHT = (1.3, 3.0)  # oedema on FLAIR, enhancement on T1ce
RANDOM_THICK_SHARE = 0.5  # per sequence
RANDOM_THICK_MM = (2, 7)


@dataclass
class Contrast:
    """A case's intensities per sequence (white matter = 1) and how each sequence was acquired."""

    mode: str  # one of synth_versions.CONTRASTS
    tissue: np.ndarray  # (3, sequence): white matter, grey matter, CSF
    lesion: np.ndarray  # (compartment in LESION order, sequence)
    lookalike: dict[str, np.ndarray]  # name -> (sequence,)
    dense_scale: float  # how strongly dense patches change the oedema (0: uniform oedema)
    bias: np.ndarray  # (sequence,) log-amplitude of each sequence's bias field
    shared_bias: bool  # one receive coil: one bias pattern for all sequences
    noise: float
    blur: float
    scale: np.ndarray  # (sequence,) white-matter value in the file
    stacks: list[SliceStack | None]  # per sequence: thick slices, or None for 1 mm


def _log_uniform(rng: np.random.Generator, low: float, high: float, size=None) -> np.ndarray:
    return np.exp(rng.uniform(np.log(low), np.log(high), size))


def physics(rng: np.random.Generator, non_enhancing: bool) -> Contrast:
    """v5's MR contrast and scanner ranges, a FLAIR-only halo around non-enhancing cores, thick slices in some cases."""
    tissue = np.array([TISSUE[t] for t in ("wm", "gm", "csf")]) * np.exp(rng.normal(0, 0.07, (3, len(SEQUENCES))))
    ranges = np.array(list(LESION.values()))
    lesion = rng.uniform(ranges[..., 0], ranges[..., 1])
    if non_enhancing:
        halo = np.array(HALO)
        lesion[SLOT[PAINT_EDEMA]] = rng.uniform(halo[:, 0], halo[:, 1])
    lookalike = {name: np.array(values, float) for name, values in LOOKALIKE.items()}
    bias = np.full(len(SEQUENCES), rng.uniform(0.06, 0.22))
    noise, blur = rng.uniform(0.03, 0.08), rng.uniform(0.45, 0.85)
    scale = np.array(WM_LEVEL) * np.exp(rng.uniform(-0.5, 0.5, len(SEQUENCES)))
    stacks = [None] * len(SEQUENCES)
    if rng.random() < THICK_SHARE:
        axis = (
            axial_axis() if rng.random() < AXIAL_SHARE else int(rng.choice([a for a in range(3) if a != axial_axis()]))
        )
        thickness = int(rng.integers(THICK_MM[0], THICK_MM[1] + 1))
        stacks = [SliceStack(axis, thickness, int(rng.integers(thickness))) for _ in SEQUENCES]
    # Dense patches are what real enhancing tumours' oedema shows; a non-enhancing halo stays uniform.
    return Contrast(
        "physics", tissue, lesion, lookalike, 0.0 if non_enhancing else 1.0, bias, True, noise, blur, scale, stacks
    )


def randomised(rng: np.random.Generator) -> Contrast:
    """SynthSeg-style: random intensity per class and sequence, per-sequence resolution and bias field."""
    n = len(SEQUENCES)
    tissue = np.vstack([np.ones(n), _log_uniform(rng, *RANDOM_TISSUE, (2, n))])
    lesion = _log_uniform(rng, *RANDOM_LESION, (len(LESION), n))
    edema, enhancing = SLOT[PAINT_EDEMA], SLOT[PAINT_ENHANCING]
    lesion[edema, FLAIR] = _log_uniform(rng, *RANDOM_BRIGHT)
    lesion[enhancing, T1CE] = _log_uniform(rng, *RANDOM_BRIGHT)
    lesion[enhancing, T1] = min(lesion[enhancing, T1], lesion[enhancing, T1CE] / 1.3)
    for code in (PAINT_NECROSIS, PAINT_SOLID):
        lesion[SLOT[code], T1CE] = min(lesion[SLOT[code], T1CE], 1.1, lesion[enhancing, T1CE] / 1.3)
    lesion[SLOT[PAINT_SOLID], T2] = lesion[edema, T2] * rng.uniform(1.3, 3.0)
    lookalike = {name: _log_uniform(rng, *RANDOM_LESION, n) for name in LOOKALIKE}
    bias = rng.uniform(0.05, 0.4, n)
    noise, blur = rng.uniform(0.02, 0.1), rng.uniform(0.3, 1.0)
    scale = np.array(WM_LEVEL) * np.exp(rng.uniform(-0.5, 0.5, n))
    stacks = [_random_stack(rng) if rng.random() < RANDOM_THICK_SHARE else None for _ in SEQUENCES]
    return Contrast("random", tissue, lesion, lookalike, rng.uniform(0, 1), bias, False, noise, blur, scale, stacks)


def _random_stack(rng: np.random.Generator) -> SliceStack:
    thickness = int(rng.integers(RANDOM_THICK_MM[0], RANDOM_THICK_MM[1] + 1))
    return SliceStack(int(rng.integers(3)), thickness, int(rng.integers(thickness)))
