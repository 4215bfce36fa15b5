"""A clinician's corrected location: sides taken as written (never mirrored), regions from the atlas vocabulary,
text parsed into the same structure, and the cross-check reading the corrected side."""

from __future__ import annotations

import pytest

from neurotriage.anatomy.location import parse_location
from neurotriage.anatomy.override import check_override, override_location, parse_override_text
from neurotriage.clinical.crosscheck import CONCORDANT, DISCORDANT, ReportedSymptom, crosscheck
from neurotriage.errors import UserError

from ..clinical.locates import healthy, locate

RIGHT_FRONTAL = parse_location(locate("right"))  # right frontal lobe, primary motor cortex, corticospinal tract
MOTOR = ["frontal_lobe", "primary_motor"]


def test_a_left_override_puts_every_region_on_the_left_and_keeps_the_volumes() -> None:
    moved = override_location(RIGHT_FRONTAL, "left", MOTOR)
    assert moved.hemisphere == "left" and moved.primary_region == "frontal_lobe" and moved.primary_region_side == "left"
    assert {(r.name, r.side, r.kind) for r in moved.regions} == {("frontal_lobe", "left", "lobe"),
                                                                  ("primary_motor", "left", "area")}  # fmt: skip
    assert [(e.name, e.side, e.involved) for e in moved.eloquent] == [("primary_motor", "left", True)]
    assert moved.volumes_ml == RIGHT_FRONTAL.volumes_ml and moved.has_tumour
    lobes = [r.ml for r in moved.regions if r.kind == "lobe"]
    assert lobes == [RIGHT_FRONTAL.volumes_ml.whole_tumour]  # the lobes share out the tumour
    assert moved.summary.startswith("Left frontal lobe, primary motor cortex (clinician), ")
    assert moved.cortical_involvement is True  # the same lobe: what was measured still holds
    assert override_location(RIGHT_FRONTAL, "left", ["temporal_lobe"]).cortical_involvement is None


def test_right_sided_weakness_is_explained_by_a_left_override_and_not_by_a_right_one() -> None:
    weakness = [ReportedSymptom("hemiparesis", side="right")]
    assert crosscheck(weakness, "left", RIGHT_FRONTAL).verdict == DISCORDANT
    assert crosscheck(weakness, "left", override_location(RIGHT_FRONTAL, "left", MOTOR)).verdict == CONCORDANT
    assert crosscheck(weakness, "left", override_location(RIGHT_FRONTAL, "right", MOTOR)).verdict == DISCORDANT
    left_weakness = [ReportedSymptom("hemiparesis", side="left")]
    assert crosscheck(left_weakness, "left", override_location(RIGHT_FRONTAL, "left", MOTOR)).verdict == DISCORDANT


def test_bilateral_and_midline_sides() -> None:
    both = override_location(RIGHT_FRONTAL, "bilateral", ["frontal_lobe", "brainstem"])
    assert {(r.name, r.side) for r in both.regions} == {("frontal_lobe", "left"), ("frontal_lobe", "right"),
                                                         ("brainstem", "midline")}  # fmt: skip
    assert both.hemisphere == "bilateral" and both.crosses_midline
    midline = override_location(RIGHT_FRONTAL, "midline", ["corpus_callosum"])
    assert midline.hemisphere is None and [r.side for r in midline.regions] == ["midline"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("left parietal", ("left", ["parietal_lobe"])),
        ("Left temporal lobe (clinician)", ("left", ["temporal_lobe"])),
        ("right frontal lobe and Broca's area", ("right", ["frontal_lobe", "broca"])),
        ("left and right frontal", ("bilateral", ["frontal_lobe"])),
        ("midline corpus callosum", ("midline", ["corpus_callosum"])),
        ("left primary motor cortex, corticospinal tract", ("left", ["primary_motor", "corticospinal_tract"])),
    ],
)
def test_text_is_parsed_into_a_side_and_regions(text: str, expected: tuple[str, list[str]]) -> None:
    assert parse_override_text(text) == expected


@pytest.mark.parametrize(
    ("text", "wrong"), [("frontal lobe", "must name one side"), ("left frontal and elbow", "'elbow' is not an atlas")]
)
def test_unreadable_text_names_the_field(text: str, wrong: str) -> None:
    with pytest.raises(UserError, match=wrong) as caught:
        parse_override_text(text)
    assert caught.value.field == "location_override"


def test_structured_overrides_are_checked() -> None:
    assert check_override("left", ["temporal_lobe", "temporal_lobe", " "]) == ("left", ["temporal_lobe"])
    for hemisphere, regions, field in (("up", ["frontal_lobe"], "location_hemisphere"),
                                       ("left", [], "location_regions"),
                                       ("left", ["frontal lobe"], "location_regions")):  # fmt: skip
        with pytest.raises(UserError) as caught:
            check_override(hemisphere, regions)
        assert caught.value.field == field


def test_a_scan_without_tumour_has_no_location_to_correct() -> None:
    with pytest.raises(UserError, match="no tumour"):
        override_location(parse_location(healthy()), "left", ["frontal_lobe"])
