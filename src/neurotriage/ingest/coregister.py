"""Rigid registrations of a raw study: each series to its reference (the T1ce on a 1 mm isotropic grid),
and the reference's T1 brain to the SRI24 template.

Images are SimpleITK images in LPS physical space (`sitk.ReadImage` of a NIfTI gives that). The
transform `coregister` returns maps a point of the reference's physical space to the same anatomy in
the moving series' physical space, which is what `sitk.Resample(moving, reference, transform)` needs
to bring the series onto the reference grid.
"""

from __future__ import annotations

import itertools

import numpy as np
import SimpleITK as sitk

REFERENCE_SPACING_MM = 1.0
HISTOGRAM_BINS = 32
SAMPLING_PERCENTAGE = 0.05
SAMPLING_SEED = 18  # fixed: the random sample, hence the result, repeats from run to run
# Series to reference: two levels. A third at full resolution costs 2.5x the time and moves the
# landmarks of thick-slice series by under 0.05 mm. The template registration keeps all three.
SERIES_LEVELS = ((4, 2), (3.0, 2.0))
TEMPLATE_LEVELS = ((4, 2, 1), (3.0, 2.0, 1.0))
# Steps are in physical units (the scales make one unit about 1 mm of shift, rotations included).
LEARNING_RATE_MM = 1.0
MIN_STEP_MM = 1e-3
ITERATIONS = 200
RELAXATION = 0.7
# A series whose widest spacing exceeds this is put on its own 1 mm grid before registration: the
# pyramid's shrink factors apply to the moving image too, and a few dozen thick slices shrunk 4x degenerate.
# Thinner series register as they are, which saves a third of the time.
FINE_ENOUGH_MM = 3.0
# The coarse rotation search before the template registration (see `coarse_rotation`).
COARSE_PITCH_YAW_DEG = (-40, -20, 0, 20, 40)
COARSE_ROLL_DEG = (-20, 0, 20)
COARSE_SHRINK = 4
COARSE_BLUR_MM = 2.0
# Mattes MI (negative) by which a registration from the coarse search's tilt must beat the untilted one to be
# taken: 35 and 50 degree turns beat it by 0.18 and 0.26, an oddly shaped synthetic brain by 0.012.
CLEARLY_BETTER_MI = 0.05


def reference_grid(image: sitk.Image) -> sitk.Image:
    """The image resampled (linear) to 1 mm isotropic voxels over the same physical extent and direction."""
    return _isotropic(image, REFERENCE_SPACING_MM)


def coregister(moving: sitk.Image, reference: sitk.Image) -> sitk.Euler3DTransform:
    """The rigid transform from the reference's physical space to the moving series' (Mattes MI, 3 levels)."""
    fixed = sitk.Cast(reference, sitk.sitkFloat32)
    moving = sitk.Cast(moving, sitk.sitkFloat32)
    if max(moving.GetSpacing()) > FINE_ENOUGH_MM:
        moving = _isotropic(moving, REFERENCE_SPACING_MM)
    initial = sitk.CenteredTransformInitializer(
        fixed, moving, sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.GEOMETRY
    )
    found = _method(initial, SERIES_LEVELS).Execute(fixed, moving)
    return _unwrapped(found)


def register_to_template(
    brain: sitk.Image, template: sitk.Image, rotation_rad: tuple[float, float, float] = (0.0, 0.0, 0.0)
) -> tuple[sitk.Euler3DTransform, float]:
    """The rigid transform from template space to the brain's, and its final Mattes MI (lower is better).

    The search starts with the centres of mass aligned and the given rotation (radians about x, y, z).
    """
    fixed = sitk.Cast(template, sitk.sitkFloat32)
    moving = sitk.Cast(brain, sitk.sitkFloat32)
    initial = sitk.CenteredTransformInitializer(
        fixed, moving, sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.MOMENTS
    )
    initial = sitk.Euler3DTransform(initial)
    initial.SetRotation(*rotation_rad)
    method = _method(initial, TEMPLATE_LEVELS)
    found = _unwrapped(method.Execute(fixed, moving))
    return found, float(method.GetMetricValue())


def template_transform(brain: sitk.Image, template: sitk.Image) -> sitk.Euler3DTransform:
    """Rigid template registration from no tilt, or from the coarse search's tilt when that lands clearly better.

    Most heads lie within 20 degrees of the template, where the search from no tilt finds the right basin and
    a tilted start may only trade a millimetre for a slightly better metric on an oddly shaped brain. A head
    turned further sends the untilted search astray by centimetres, with a far worse final metric.
    """
    found, metric = register_to_template(brain, template)
    start = coarse_rotation(brain, template)
    if not any(start):
        return found
    tilted, tilted_metric = register_to_template(brain, template, start)
    return tilted if tilted_metric < metric - CLEARLY_BETTER_MI else found


def coarse_rotation(brain: sitk.Image, template: sitk.Image) -> tuple[float, float, float]:
    """The starting rotation (radians about x, y, z) under which the brain best matches the template at 8 mm.

    A grid of tilts (up to 40 degrees of pitch and yaw, 20 of roll) is scored by mutual information on
    blurred 4x-shrunk images, centres of mass aligned, without optimising: a few seconds, and the
    registration then starts in the right basin for heads turned further than it could find alone.
    """
    fixed, moving = (sitk.Shrink(_blurred(image), [COARSE_SHRINK] * 3) for image in (template, brain))
    centred = sitk.Euler3DTransform(
        sitk.CenteredTransformInitializer(
            fixed, moving, sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.MOMENTS
        )
    )
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=HISTOGRAM_BINS)
    method.SetInterpolator(sitk.sitkLinear)
    scores = {}
    for degrees in itertools.product(COARSE_PITCH_YAW_DEG, COARSE_ROLL_DEG, COARSE_PITCH_YAW_DEG):
        start = sitk.Euler3DTransform(centred)
        start.SetRotation(*np.radians(degrees))
        method.SetInitialTransform(start, inPlace=False)
        scores[degrees] = method.MetricEvaluate(fixed, moving)
    return tuple(float(v) for v in np.radians(min(scores, key=scores.get)))


def _blurred(image: sitk.Image) -> sitk.Image:
    return sitk.Cast(sitk.SmoothingRecursiveGaussian(image, COARSE_BLUR_MM), sitk.sitkFloat32)


def _method(initial: sitk.Transform, levels: tuple[tuple[int, ...], tuple[float, ...]]) -> sitk.ImageRegistrationMethod:
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=HISTOGRAM_BINS)
    method.SetMetricSamplingStrategy(method.RANDOM)
    method.SetMetricSamplingPercentage(SAMPLING_PERCENTAGE, SAMPLING_SEED)
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=LEARNING_RATE_MM,
        minStep=MIN_STEP_MM,
        numberOfIterations=ITERATIONS,
        relaxationFactor=RELAXATION,
    )
    method.SetOptimizerScalesFromPhysicalShift()
    shrink, smoothing = levels
    method.SetShrinkFactorsPerLevel(list(shrink))
    method.SetSmoothingSigmasPerLevel(list(smoothing))
    method.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    method.SetInitialTransform(initial, inPlace=False)
    return method


def _unwrapped(transform: sitk.Transform) -> sitk.Euler3DTransform:
    """The Euler3D transform inside the one-element composite `Execute` returns."""
    composite = sitk.CompositeTransform(transform)
    if composite.GetNumberOfTransforms() != 1:
        raise ValueError(f"registration returned {composite.GetNumberOfTransforms()} transforms, expected one")
    return sitk.Euler3DTransform(composite.GetNthTransform(0))


def _isotropic(image: sitk.Image, spacing_mm: float) -> sitk.Image:
    """Linear resample to `spacing_mm` voxels whose grid covers the same box (voxel edges) as the image's."""
    old_spacing = np.array(image.GetSpacing())
    extent = np.array(image.GetSize()) * old_spacing
    size = np.maximum(1, np.round(extent / spacing_mm)).astype(int)
    direction = np.array(image.GetDirection()).reshape(3, 3)
    # The box's corner is half an old voxel before the first centre; the new first centre is half a new voxel in.
    corner = np.array(image.GetOrigin()) - direction @ (old_spacing / 2)
    origin = corner + direction @ np.full(3, spacing_mm / 2)
    return sitk.Resample(
        image,
        [int(s) for s in size],
        sitk.Transform(),
        sitk.sitkLinear,
        [float(v) for v in origin],
        [spacing_mm] * 3,
        image.GetDirection(),
        0.0,
        sitk.sitkFloat32,
    )
