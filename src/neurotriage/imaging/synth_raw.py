"""A synthetic raw study: a synthetic BraTS-space case as a scanner gives it, as converter NIfTI series.

Each case gets a head around its brain (skull, scalp, fat, neck), one rigid pose for the whole study,
and per series its own slice thickness, field of view and orientation code, written in both qform and
sform. The study goes to OUT/<ID>/ as `<SeriesDescription>_<SeriesNumber>.nii.gz` (with BIDS-like JSON
sidecars in some studies) plus a localiser, or as DICOM in OUT/<ID>/dicom/<SeriesNumber>/; the
BraTS-space case it came from, its brain mask and truth.json (pose, landmarks in both spaces, series map)
go to OUT/truth/<ID>/.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi
from threadpoolctl import threadpool_limits

from neurotriage.files import atomic_dir
from neurotriage.imaging.io import write_nifti
from neurotriage.imaging.labels import TUMOUR_REGIONS
from neurotriage.imaging.naming import BRATS2020, SEQUENCES, Naming, from_internal
from neurotriage.imaging.synth import SynthCase, case_seed, check_cohort_args, cohort_case_id, generate_case
from neurotriage.imaging.synth_dicom import series_folder, study_identity, write_dicom_study
from neurotriage.imaging.synth_head import Pose, head_shells, random_pose, sample, shell_affine
from neurotriage.imaging.synth_series import SeriesPlan, plan_study
from neurotriage.parallel import run_jobs

TRUTH_FOLDER = "truth"
SUB_SLICE_MM = 1.5  # thick slices average samples this far apart: partial volume across the slab
NOISE = 0.02  # noise sigma, relative to the brain's median intensity
SIDECAR_CHANCE = 0.7  # share of studies whose series come with JSON sidecars
FOV_JITTER_MM = 6.0
EXTREME_BAND_MM = 3.0  # a surface extreme is the mean of the brain voxels this close to the extreme
Series = tuple[SeriesPlan, np.ndarray, np.ndarray]  # plan, voxel -> scanner world affine, int16 image


def raw_series(case: SynthCase, rng: np.random.Generator) -> tuple[Pose, list[Series]]:
    """The study's pose and its series: (plan, affine, int16 array), localiser first."""
    brain = case.images["t1"] > 0
    voxels = np.argwhere(brain)
    centre = _world(case.affine, voxels.mean(axis=0))
    corners = _world(case.affine, _box_corners(voxels.min(axis=0) - 1, voxels.max(axis=0) + 1))
    pose = random_pose(rng, centre)
    shells = head_shells(rng, brain, case.affine)
    head = Head(pose, case.affine, shell_affine(case.affine), pose.apply(corners), brain.astype(np.float32))
    levels = {s: float(np.median(case.images[s][brain][::5])) for s in SEQUENCES}
    # The field of view is centred a little below the brain's centre, where a radiographer puts it.
    fov_centre = pose.apply((centre + [0.0, 0.0, -12.0])[None])[0]
    series = []
    for plan in plan_study(rng):
        affine = plan.affine(fov_centre + rng.uniform(-FOV_JITTER_MM, FOV_JITTER_MM, 3))
        sequence = "t1" if plan.sequence == "localiser" else plan.sequence
        image = head.acquire(case.images[sequence], shells[sequence], levels[sequence], affine, plan.shape, rng)
        series.append((plan, affine, image))
    return pose, series


def _box_corners(low: np.ndarray, high: np.ndarray) -> np.ndarray:
    return np.array([[(low, high)[b >> a & 1][a] for a in range(3)] for b in range(8)], float)


@dataclass
class Head:
    """What every series of one study samples: pose, grids, the brain's box in scanner world, brain fraction."""

    pose: Pose
    brats_affine: np.ndarray
    shell_affine: np.ndarray
    brain_corners: np.ndarray  # (8, 3) scanner-world corners of the brain's bounding box
    fraction: np.ndarray  # float32 brain mask on the BraTS grid

    def acquire(
        self,
        brain_image: np.ndarray,
        shell: np.ndarray,
        level: float,
        affine: np.ndarray,
        shape: tuple[int, int, int],
        rng: np.random.Generator,
    ) -> np.ndarray:
        """Sample the head into one series' grid: slab-averaged thick slices, noise, int16."""
        thickness = float(np.linalg.norm(affine[:3, 2]))
        n_sub = max(1, round(thickness / SUB_SLICE_MM))
        fine = affine.copy()
        fine[:3, 2] = affine[:3, 2] / n_sub
        fine[:3, 3] = affine[:3, 3] + affine[:3, 2] * (0.5 / n_sub - 0.5)
        fine_shape = (shape[0], shape[1], shape[2] * n_sub)
        image = sample(shell, self.shell_affine, self.pose, fine, fine_shape)
        image *= np.float32(level)
        # The brain is sampled only within its box: a third of a whole-head grid, and most of the cost.
        box, box_affine = self._brain_box(fine, fine_shape)
        if box is not None:
            shape_box = tuple(s.stop - s.start for s in box)
            inside = sample(brain_image, self.brats_affine, self.pose, box_affine, shape_box)
            fraction = sample(self.fraction, self.brats_affine, self.pose, box_affine, shape_box)
            image[box] = inside + (1 - fraction) * image[box]
        image = image.reshape(*shape, n_sub).mean(axis=-1)
        # Magnitude images: noise folds over at zero, so the air is faint noise, never negative. Uniform
        # noise is several times cheaper to draw than normal and looks the same at this level.
        grain = rng.random(image.shape, dtype=np.float32)
        grain -= np.float32(0.5)
        image += grain * np.float32(NOISE * level * np.sqrt(12))
        return np.rint(np.clip(np.abs(image), 0, 32000)).astype(np.int16)

    def _brain_box(
        self, affine: np.ndarray, shape: tuple[int, int, int]
    ) -> tuple[tuple[slice, ...] | None, np.ndarray]:
        """The output voxels that can hold brain, and the affine of that sub-grid."""
        index = _world(np.linalg.inv(affine), self.brain_corners)
        low = np.clip(np.floor(index.min(axis=0)).astype(int) - 1, 0, shape)
        high = np.clip(np.ceil(index.max(axis=0)).astype(int) + 2, 0, shape)
        if (high <= low).any():
            return None, affine
        box_affine = affine.copy()
        box_affine[:3, 3] = _world(affine, low)
        return tuple(slice(lo, hi) for lo, hi in zip(low, high, strict=True)), box_affine


def _world(affine: np.ndarray, voxels: np.ndarray) -> np.ndarray:
    """Voxel coordinates (..., 3) -> world (RAS) mm."""
    return voxels @ affine[:3, :3].T + affine[:3, 3]


def landmarks(case: SynthCase) -> dict[str, np.ndarray]:
    """World (RAS) points in BraTS space: tumour centroid (if any), brain centroid and brain-surface extremes."""
    points = {}
    tumour = np.isin(case.seg, TUMOUR_REGIONS["WT"])
    if tumour.any():
        points["tumour_centroid"] = _world(case.affine, np.argwhere(tumour).mean(axis=0))
    mask = case.images["t1"] > 0
    points["brain_centroid"] = _world(case.affine, np.argwhere(mask).mean(axis=0))
    # The extremes lie on the surface: its voxels alone are enough, and far fewer.
    brain = _world(case.affine, np.argwhere(mask & ~ndi.binary_erosion(mask)).astype(float))
    # RAS: +x right, +y anterior, +z superior.
    for name, axis, sign in (
        ("left_extreme", 0, -1),
        ("right_extreme", 0, 1),
        ("posterior_extreme", 1, -1),
        ("anterior_extreme", 1, 1),
        ("superior_extreme", 2, 1),
    ):
        along = sign * brain[:, axis]
        points[name] = brain[along >= along.max() - EXTREME_BAND_MM].mean(axis=0)
    return points


def study_truth(case: SynthCase, pose: Pose, series: list[Series], sidecars: bool, naming: Naming) -> dict:
    """truth.json of a raw study: the BraTS case's truth plus the pose, landmarks and series map."""
    marks = landmarks(case)
    return {
        **case.truth,
        "naming": naming.name,
        "brain_mask": f"{case.case_id}_brainmask.nii.gz",
        "pose": {
            "rotation_deg": list(pose.rotation_deg),
            "rotation": "Rz @ Ry @ Rx (degrees about x, y, z), about centre_mm",
            "translation_mm": list(pose.translation_mm),
            "centre_mm": list(pose.centre_mm),
            "brats_to_scanner": np.round(pose.matrix, 6).tolist(),
        },
        "landmarks": {
            name: {"brats_mm": _rounded(p), "scanner_mm": _rounded(pose.apply(p[None])[0])} for name, p in marks.items()
        },
        "sidecars": sidecars,
        "series": {
            plan.filename: {
                "sequence": plan.sequence,
                "series_description": plan.description,
                "series_number": plan.number,
                "slice_thickness_mm": plan.spacing[2],
                "voxel_size_mm": list(plan.spacing),
                "shape": list(plan.shape),
                "orientation": plan.axcodes,
            }
            for plan, _, _ in series
        },
    }


def _rounded(point: np.ndarray) -> list[float]:
    return [round(float(v), 3) for v in point]


def write_raw_case(
    case: SynthCase,
    out_dir: Path,
    rng: np.random.Generator,
    naming: Naming = BRATS2020,
    dicom_rng: np.random.Generator | None = None,
) -> dict:
    """Write out_dir/truth/<ID>/ then the raw study out_dir/<ID>/; returns truth.json's content.

    With `dicom_rng` (which draws the patient, dates and UIDs) the study is written as DICOM instead of NIfTI.
    """
    out_dir = Path(out_dir)
    with threadpool_limits(limits=1, user_api="blas"):
        pose, series = raw_series(case, rng)
    sidecars = bool(rng.random() < SIDECAR_CHANCE)
    truth = study_truth(case, pose, series, sidecars, naming)
    identity = None if dicom_rng is None else study_identity(dicom_rng)
    if identity is not None:
        truth["sidecars"] = False
        truth["dicom"] = identity.truth()
        for plan, _, _ in series:
            truth["series"][plan.filename]["dicom"] = series_folder(plan)
    volumes = {**case.images, "seg": from_internal(case.seg, naming)}
    (out_dir / TRUTH_FOLDER).mkdir(parents=True, exist_ok=True)
    with atomic_dir(out_dir / TRUTH_FOLDER / case.case_id) as tmp:
        with ThreadPoolExecutor(max_workers=2) as pool:
            paths = [tmp / naming.filename(case.case_id, key) for key in volumes]
            list(pool.map(write_nifti, volumes.values(), [case.affine] * len(volumes), paths))
        write_nifti((case.images["t1"] > 0).astype(np.uint8), case.affine, tmp / truth["brain_mask"])
        (tmp / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    with atomic_dir(out_dir / case.case_id) as tmp:
        if identity is not None:
            write_dicom_study(series, identity, tmp)
            return truth
        # gzip releases the GIL: two threads compress two series at once.
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(lambda s: write_nifti(s[2], s[1], tmp / s[0].filename), series))
        for plan, _, _ in series:
            if sidecars:
                sidecar = tmp / plan.filename.replace(".nii.gz", ".json")
                sidecar.write_text(json.dumps(plan.sidecar, indent=2) + "\n")
    return truth


def write_raw_cohort(
    out_dir: Path,
    n: int,
    seed: int,
    naming: Naming = BRATS2020,
    *,
    progress: bool = True,
    workers: int = 1,
    dicom: bool = False,
) -> list[dict]:
    """Generate `n` raw studies (case i is the raw form of `write_cohort`'s case i), as DICOM with `dicom`."""
    check_cohort_args(out_dir, n, seed)
    jobs = [(Path(out_dir), seed, index, n, naming, dicom) for index in range(n)]
    done = dict(run_jobs(_write_raw_cohort_case, jobs, min(workers, n), "synth raw", progress))
    return [done[index] for index in range(n)]


def _write_raw_cohort_case(
    out_dir: Path, seed: int, index: int, n: int, naming: Naming, dicom: bool
) -> tuple[int, dict]:
    seed_i = case_seed(seed, index)
    case = generate_case(seed_i, cohort_case_id(naming, index, n))
    # A stream of its own: the BraTS-space case stays the one `write_cohort` makes from the same seed.
    rng = np.random.default_rng(np.random.SeedSequence([seed_i, 1]))
    # The DICOM identity has a third stream, so the pixels are those of the NIfTI study from the same seed.
    dicom_rng = np.random.default_rng(np.random.SeedSequence([seed_i, 2])) if dicom else None
    return index, write_raw_case(case, out_dir, rng, naming, dicom_rng)
