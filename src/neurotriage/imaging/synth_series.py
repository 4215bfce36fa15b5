"""The series protocol of a synthetic raw study: names, numbers, slice geometry, orientation and timing tags."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from nibabel.orientations import axcodes2ornt

THICKNESSES = (1.0, 3.0, 5.5)  # mm: the protocol's slice thickness, drawn per study
# Scanner names per sequence; the 3D ones (sagittal, 1 mm) and the 2D axial ones.
AXIAL_NAMES = {
    "flair": ("AX_FLAIR", "T2_FLAIR_AX", "t2_tirm_tra_dark_fluid", "AX_T2_FLAIR"),
    "t1": ("AX_T1", "T1_SE_AX", "t1_fl2d_tra", "AX_T1_PRE"),
    "t1ce": ("MRHR_T1_AX_POST_GAD", "AX_T1_POST_GAD", "t1_se_tra_post_contrast", "T1_AX_GD"),
    "t2": ("T2_TSE_AX", "AX_T2", "t2_tse_tra", "AX_T2_FSE"),
}
SAGITTAL_NAMES = {"t1": ("T1_MPRAGE_SAG", "sag_3D_T1"), "t1ce": ("T1_MPRAGE_SAG_POST_GAD", "sag_3D_T1_GD")}
AXIAL_CODES = ("LAS", "LPS", "RAS", "RPS", "LPI", "RAI")
SAGITTAL_CODES = ("ASL", "PSR", "AIR", "PIL")
# Seconds, as converters write BIDS sidecars: (repetition, echo, inversion or None) per sequence.
TIMING = {
    "flair": (9.0, 0.09, 2.5),
    "t1": (0.55, 0.012, None),
    "t1ce": (0.55, 0.012, None),
    "t2": (4.5, 0.1, None),
}
MPRAGE_TIMING = (2.3, 0.003, 0.9)
SCANNING_SEQUENCE = {"flair": "SE\\IR", "t1": "SE", "t1ce": "SE", "t2": "SE"}
GADOLINIUM = ("GADOVIST", "DOTAREM", "MultiHance")
LOCALISER_NAMES = ("localizer", "AAHead_Scout", "3-plane loc")


@dataclass
class SeriesPlan:
    """One series: what it shows, its name and number, and its grid in scanner world."""

    sequence: str  # flair, t1, t1ce, t2, or "localiser"
    description: str
    number: int
    axcodes: str
    spacing: tuple[float, float, float]  # mm; the last axis is the slice axis
    shape: tuple[int, int, int]
    sidecar: dict

    @property
    def filename(self) -> str:
        """The converter's file name: <SeriesDescription>_<SeriesNumber>.nii.gz."""
        return f"{self.description}_{self.number}.nii.gz"

    def affine(self, centre: np.ndarray) -> np.ndarray:
        """Voxel -> scanner world (RAS) affine with the grid's centre at `centre` and axes along `axcodes`."""
        affine = np.zeros((4, 4))
        affine[3, 3] = 1.0
        for axis, (world, flip) in enumerate(axcodes2ornt(tuple(self.axcodes))):
            affine[int(world), axis] = flip * self.spacing[axis]
        affine[:3, 3] = centre - affine[:3, :3] @ ((np.array(self.shape) - 1) / 2)
        return affine


def plan_study(rng: np.random.Generator) -> list[SeriesPlan]:
    """A localiser then the four sequences in acquisition order (T1ce last), with drawn geometry and names."""
    thickness = float(rng.choice(THICKNESSES))
    thin_t1ce = thickness == 1.0 or rng.random() < 0.4  # a 3D post-contrast T1 is common in real protocols
    order = [*rng.permutation(["flair", "t1", "t2"]), "t1ce"]
    axial_codes = iter(rng.permutation(AXIAL_CODES))
    agent = str(rng.choice(GADOLINIUM))
    number = 1
    clock = int(rng.integers(8 * 3600, 17 * 3600))
    plans = [_localiser(rng, number)]
    plans[0].sidecar["AcquisitionTime"] = _clock_text(clock)
    for sequence in order:
        number += int(rng.integers(1, 4))
        clock += int(rng.integers(150, 420))
        sagittal = sequence in SAGITTAL_NAMES and (thickness == 1.0 or (sequence == "t1ce" and thin_t1ce))
        if sagittal:
            plan = _sagittal(rng, str(sequence), number)
        else:
            plan = _axial(rng, str(sequence), number, thickness, str(next(axial_codes)))
        plan.sidecar.update(_timing_tags(str(sequence), sagittal, clock))
        if sequence == "t1ce":
            plan.sidecar["ContrastBolusAgent"] = agent
        plans.append(plan)
    return plans


def _sidecar(description: str, number: int, thickness: float) -> dict:
    return {"Modality": "MR", "SeriesDescription": description, "SeriesNumber": number, "SliceThickness": thickness}


def _axial(rng: np.random.Generator, sequence: str, number: int, thickness: float, codes: str) -> SeriesPlan:
    in_plane = 1.0 if thickness == 1.0 else float(rng.choice((0.898, 0.9, 0.9375)))
    matrix = int(rng.choice((240, 256))) if thickness == 1.0 else int(rng.choice((256, 260)))
    slices = int(np.ceil(rng.uniform(170, 185) / thickness))
    name = str(rng.choice(AXIAL_NAMES[sequence]))
    spacing, shape = (in_plane, in_plane, thickness), (matrix, matrix, slices)
    return SeriesPlan(sequence, name, number, codes, spacing, shape, _sidecar(name, number, thickness))


def _sagittal(rng: np.random.Generator, sequence: str, number: int) -> SeriesPlan:
    name = str(rng.choice(SAGITTAL_NAMES[sequence]))
    codes = str(rng.choice(SAGITTAL_CODES))
    shape = (int(rng.choice((240, 256))), 240, int(rng.choice((160, 176))))
    return SeriesPlan(sequence, name, number, codes, (1.0, 1.0, 1.0), shape, _sidecar(name, number, 1.0))


def _localiser(rng: np.random.Generator, number: int) -> SeriesPlan:
    """A few thick sagittal slices at low resolution: an ingest step must skip it."""
    name = str(rng.choice(LOCALISER_NAMES)).replace(" ", "_")
    sidecar = _sidecar(name, number, 8.0) | {"ImageType": ["ORIGINAL", "PRIMARY", "M", "NORM", "DIS2D"]}
    return SeriesPlan("localiser", name, number, "PSR", (1.2, 1.2, 8.0), (220, 220, 3), sidecar)


def _timing_tags(sequence: str, three_d: bool, clock: int) -> dict:
    repetition, echo, inversion = MPRAGE_TIMING if three_d else TIMING[sequence]
    tags = {
        "RepetitionTime": repetition,
        "EchoTime": echo,
        "ScanningSequence": "GR\\IR" if three_d else SCANNING_SEQUENCE[sequence],
        "MRAcquisitionType": "3D" if three_d else "2D",
        "AcquisitionTime": _clock_text(clock),
    }
    if inversion is not None:
        tags["InversionTime"] = inversion
    return tags


def _clock_text(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}.000000"
