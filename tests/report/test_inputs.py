"""ReportInput: built from the stages' objects, rejects voxels that do not fit together."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from neurotriage.imaging.sri24 import BRATS_AFFINE


def test_numpy_values_become_plain_json(make_input):
    report = make_input("left")
    ml = report.locate.regions[0].ml
    assert type(ml) is float  # was np.float64 in the locate document
    assert report.to_json()["patient"]["id"] == "17"  # database ids become text


def test_clinical_spelling_of_snomed_is_accepted(make_input):
    assert make_input("left").symptoms[1].snomed == "25064002"


def test_has_tumour_follows_the_localisation(make_input):
    assert make_input("left").has_tumour
    assert not make_input(None).has_tumour


def test_rejects_a_segmentation_off_the_image_grid(make_input):
    images = make_input("left").imaging.images
    imaging = {"case_id": "C1", "images": images, "affine": BRATS_AFFINE, "seg": np.zeros((2, 2, 2), np.uint8)}
    with pytest.raises(ValidationError, match="differs from the images"):
        make_input("left", imaging=imaging)
