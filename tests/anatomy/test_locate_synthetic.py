"""Acceptance: on synthetic cases locate() recovers the seeded lobe and hemisphere (>= 95 %)."""

from __future__ import annotations

import pytest

from .conftest import locate_doc as locate

synth = pytest.importorskip("neurotriage.imaging.synth", reason="the synthetic cohort module is not there yet")

FORCED = [(lobe, side) for lobe in synth.LOBES for side in ("left", "right")]
RANDOM_SEEDS = range(500, 506)


@pytest.fixture(scope="module")
def outcomes() -> list[tuple[str, dict, dict]]:
    """(case, truth, locate result) for every lobe x hemisphere plus a few seeds left to chance."""
    cases = [
        synth.generate_case(100 + n, f"forced-{lobe}-{side}", lobe=lobe, hemisphere=side)
        for n, (lobe, side) in enumerate(FORCED)
    ]
    cases += [synth.generate_case(seed, f"random-{seed}") for seed in RANDOM_SEEDS]
    return [(case.case_id, case.truth, locate(case.seg, case.affine)) for case in cases]


@pytest.mark.slow
def test_lobe_and_hemisphere_recovered(outcomes):
    tumours = [(cid, truth, found) for cid, truth, found in outcomes if truth["kind"] != "healthy"]
    seeded = {(truth["lobe"], truth["hemisphere"]) for _, truth, _ in tumours}
    assert set(FORCED) <= seeded  # every lobe on both sides is tried
    misses = [
        f"{cid}: seeded {truth['hemisphere']} {truth['lobe']}, found {found['hemisphere']} {found['primary_region']}"
        for cid, truth, found in tumours
        if (found["primary_region"], found["hemisphere"]) != (truth["lobe"], truth["hemisphere"])
    ]
    assert len(misses) <= 0.05 * len(tumours), misses


@pytest.mark.slow
def test_healthy_cases_have_no_tumour(outcomes):
    for _, truth, found in outcomes:
        assert found["tumour_found"] is (truth["kind"] != "healthy")
