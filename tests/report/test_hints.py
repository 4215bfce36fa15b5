"""The review prompt: FLAIR-bright tissue touching the outline but left out is measured, nothing else."""

from __future__ import annotations

import numpy as np
import pytest

from neurotriage.imaging.sri24 import BRATS_AFFINE
from neurotriage.report.hints import flair_beyond_outline, review_hints

SPACING = (1.0, 1.0, 1.0)


def ball(shape, centre, radius) -> np.ndarray:
    grid = np.indices(shape).astype(float)
    return sum((g - c) ** 2 for g, c in zip(grid, centre, strict=True)) <= radius**2


@pytest.fixture
def brain() -> tuple[np.ndarray, np.ndarray]:
    """A 100-voxel-wide brain of FLAIR ~100 (noise 5) with a labelled tumour of radius 8 at its centre."""
    shape = (100, 100, 100)
    flair = np.where(ball(shape, (50, 50, 50), 45), 100.0, 0.0)
    flair += np.random.default_rng(0).normal(0, 5, shape) * (flair > 0)
    seg = np.where(ball(shape, (50, 50, 50), 8), 2, 0).astype(np.uint8)
    flair[seg > 0] = 200.0
    return flair.astype(np.float32), seg


def test_a_bright_rim_left_out_of_the_outline_is_measured(brain):
    flair, seg = brain
    rim = ball(flair.shape, (50, 50, 50), 11) & (seg == 0)
    flair[rim] = 140.0
    ml = flair_beyond_outline(flair, seg, SPACING)
    assert ml == pytest.approx(rim.sum() / 1000, rel=0.05)
    assert review_hints(flair, seg, BRATS_AFFINE)[0].text.startswith(f"{ml:.1f} ml of FLAIR-hyperintense tissue")


def test_an_outline_that_takes_in_all_bright_tissue_earns_no_hint(brain):
    flair, seg = brain
    assert flair_beyond_outline(flair, seg, SPACING) < 0.05
    assert review_hints(flair, seg, BRATS_AFFINE) == []


def test_bright_tissue_apart_from_the_tumour_or_far_from_it_does_not_count(brain):
    flair, seg = brain
    flair[ball(flair.shape, (50, 50, 75), 4)] = 160.0  # far away (over 10 mm from the outline)
    flair[ball(flair.shape, (50, 66, 50), 2)] = 160.0  # near, but not touching the outline
    assert flair_beyond_outline(flair, seg, SPACING) < 0.05


def test_no_tumour_or_no_flair_no_hint(brain):
    flair, seg = brain
    assert review_hints(flair, np.zeros_like(seg), BRATS_AFFINE) == []
    assert review_hints(None, seg, BRATS_AFFINE) == []


def test_the_report_shows_the_prompt_and_report_json_keeps_it(make_input):
    from neurotriage.report.html import render_html

    hint = {"kind": "flair_beyond_outline", "ml": 12.5, "text": "12.5 ml of FLAIR-hyperintense tissue touches"}
    report = make_input("left", review_hints=[hint])
    assert "Review prompt: 12.5 ml of FLAIR-hyperintense tissue touches" in render_html(report, {})
    assert report.to_json()["review_hints"] == [hint]
