"""Small synthetic cases and report inputs for the report tests (40x48x32 voxels)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from neurotriage.imaging.sri24 import BRATS_AFFINE
from neurotriage.report.inputs import ReportInput
from neurotriage.segmentation.uncertainty import uncertain_tissue

SHAPE = (40, 48, 32)
HOSTILE_NAME = '<script>alert("pwned")</script> O\'Brien & Ñoño 李'


def world_grid(shape: tuple[int, int, int], affine: np.ndarray) -> np.ndarray:
    """World (RAS mm) coordinates of every voxel, shape + (3,)."""
    ijk = np.indices(shape).reshape(3, -1).T
    return nib.affines.apply_affine(affine, ijk).reshape(*shape, 3)


def synthetic_case(side: str | None, affine: np.ndarray = BRATS_AFFINE) -> tuple[np.ndarray, np.ndarray]:
    """An ellipsoid head with a graded intensity and, unless side is None, a tumour in that
    hemisphere: 'left' means smaller world x than the midline, whatever the array order."""
    xyz = world_grid(SHAPE, affine)
    centre = nib.affines.apply_affine(affine, (np.array(SHAPE) - 1) / 2)
    rel = xyz - centre
    head = (rel[..., 0] / 17) ** 2 + (rel[..., 1] / 21) ** 2 + (rel[..., 2] / 14) ** 2 <= 1
    image = np.where(head, 50 + rel[..., 1] + 40, 0).astype(np.float32)
    seg = np.zeros(SHAPE, np.uint8)
    if side is not None:
        offset = np.array([-9.0 if side == "left" else 9.0, 5.0, 2.0])
        dist = np.linalg.norm(rel - offset, axis=-1)
        seg[dist < 6] = 2
        seg[dist < 4] = 3
        seg[dist < 2] = 1
    return image, seg


def edge_uncertainty(seg: np.ndarray) -> np.ndarray:
    """A uint8 uncertainty map as a model's looks: high on a two-voxel band around the tumour's outline."""
    tumour = seg > 0
    band = ndimage.binary_dilation(tumour) & ~ndimage.binary_erosion(tumour)
    return np.where(band, 200, 0).astype(np.uint8)


def locate_for(side: str) -> dict:
    """A localisation result in the anatomy stage's documented keys."""
    return {
        "hemisphere": side,
        "primary_region": "frontal_lobe",
        "regions": [
            {"name": "frontal_lobe", "side": side, "ml": np.float64(0.71), "fraction_of_tumour": 0.78},
            {"name": "insula", "side": side, "ml": 0.2, "fraction_of_tumour": 0.22},
        ],
        "crosses_midline": False,
        "volumes_ml": {"whole_tumour": 0.91, "tumour_core": 0.27, "enhancing": 0.23, "necrosis": 0.04, "edema": 0.64},
        "centroid_mm": [-28.5, 14.0, 17.5],
        "n_components": 1,
        "touches_ventricles": False,
        "cortical_involvement": True,
        "eloquent": [{"name": "broca", "side": side}],
        "summary": f"{side.capitalize()} frontal lobe, 0.9 ml whole tumour, does not cross the midline",
        "vasari": {
            "F1": {"name": "tumour location", "code": 1, "value": "frontal_lobe"},
            "F2": {"name": "side of tumour epicentre", "code": 1 if side == "right" else 3, "value": side},
            "F5": {"name": "proportion enhancing", "code": 4, "percent": 25.0},
            "F21": {"name": "deep white matter invasion", "code": 2, "structures": ["corpus_callosum"]},
            "F23": {"name": "enhancing tumour crosses midline", "code": 2},
        },
    }


NO_TUMOUR_LOCATE = {
    "hemisphere": None,
    "primary_region": None,
    "regions": [],
    "volumes_ml": {"whole_tumour": 0.0, "tumour_core": 0.0, "enhancing": 0.0, "necrosis": 0.0, "edema": 0.0},
    "summary": "No tumour found",
}


def crosscheck(verdict: str, explained: bool) -> dict:
    """A cross-check result in the keys neurotriage.clinical.crosscheck returns."""
    return {
        "verdict": verdict,
        "score": 1.0 if explained else 0.0,
        "needs_review": verdict != "concordant",
        "summary": f"Imaging: left frontal lobe. Symptoms: {verdict}.",
        "predicted_regions": [{"name": "primary_motor", "side": "left", "symptoms": ["hemiparesis"]}],
        "symptoms": [
            {
                "code": "hemiparesis",
                "name": "Hemiparesis",
                "snomed_code": "20022000",
                "side": "right",
                "explained": explained,
                "sources": ["Adams and Victor's Principles of Neurology, ch. 3"],
                "reason": "right-sided hemiparesis is explained: the tumour involves left primary motor cortex"
                if explained
                else "right-sided hemiparesis points to left primary motor cortex, but the tumour is ipsilateral",
            },
            {
                "code": "headache",
                "name": "Headache",
                "side": None,
                "explained": None,
                "reason": "headache does not localise (e.g. raised intracranial pressure); not scored",
            },
        ],
    }


REFERRALS = [
    {
        "rank": 1,
        "score": 93.4,
        "distance_km": 12.5,
        "components": {"specialty": 30.0},
        "doctor": {"id": 3, "name": "Dr Ada Fictional", "specialty": "neurosurgery", "wait_days": 7},
        "hospital": {"id": 1, "name": "Imaginary General", "city": "Lyon", "capabilities": ["awake_craniotomy"]},
        "reasons": ["awake craniotomy available (eloquent cortex)", "frontal lobe expertise"],
    },
    {
        "rank": 2,
        "score": 81.0,
        "doctor": {"name": "Dr Bea Example", "specialty": "neuro-oncology"},
        "hospital": {"name": "Pretend Clinic"},
        "reasons": ["enhancing tumour: neuro-oncology"],
    },
]


@pytest.fixture(scope="session")
def make_input() -> Callable[..., ReportInput]:
    """Factory for a ReportInput; side=None gives a healthy scan."""

    def _make(
        side: str | None = "left",
        verdict: str = "concordant",
        name: str = "Jo Test",
        with_imaging: bool = True,
        **overrides,
    ) -> ReportInput:
        image, seg = synthetic_case(side)
        data = {
            "patient": {"id": 17, "name": name, "sex": "F", "birth_date": "1970-05-04"},
            "symptoms": [
                {"code": "hemiparesis", "name": "Hemiparesis", "snomed": "20022000", "side": "right"},
                {"code": "headache", "name": "Headache", "snomed_code": 25064002, "onset": "2025-12-01"},
            ],
            "locate": locate_for(side) if side else NO_TUMOUR_LOCATE,
            "crosscheck": crosscheck(verdict, explained=verdict == "concordant"),
            "referrals": REFERRALS,
            "provenance": {
                "software_version": "0.1.0",
                "model_id": "unet3d-brats-small",
                "model_sha256": "ab" * 32,
                "inputs": [{"path": f"case/C1_{k}.nii.gz", "sha256": f"{i}" * 64} for i, k in enumerate("abcd")],
                "created_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
            },
            "imaging": {
                "case_id": "C1",
                "images": {"flair": image, "t1": image},
                "seg": seg,
                "uncertainty": edge_uncertainty(seg),
                "affine": BRATS_AFFINE,
                "naming": "brats2020",
            }
            if with_imaging
            else None,
            "uncertainty": uncertain_tissue(edge_uncertainty(seg), seg, (1.0, 1.0, 1.0)) if with_imaging else None,
        }
        return ReportInput.model_validate(data | overrides)

    return _make
