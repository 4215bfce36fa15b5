"""Series identification of a raw study: header and sidecar reading, skip rules, weighting and contrast."""

from __future__ import annotations

import json
from datetime import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from neurotriage.errors import UserError
from neurotriage.ingest.identify import SeriesMap, identify
from neurotriage.ingest.rules import contrast_by_name, skip_reasons, weighting_by_name
from neurotriage.ingest.series import SeriesInfo, read_nifti_folder, read_nifti_series, series_from_keywords

THICK = (0.9, 0.9, 5.5)
ISO = (1.0, 1.0, 1.0)
# BIDS sidecars as dcm2niix writes them: times in seconds, multi-valued codes joined by underscores.
FLAIR_TAGS = {"ScanningSequence": "SE_IR", "RepetitionTime": 9.0, "EchoTime": 0.09, "InversionTime": 2.5}
T2_TAGS = {"ScanningSequence": "SE", "RepetitionTime": 5.0, "EchoTime": 0.1}
MPRAGE_TAGS = {"ScanningSequence": "GR_IR", "RepetitionTime": 2.3, "EchoTime": 0.003, "InversionTime": 0.9}
SE_T1_TAGS = {"ScanningSequence": "SE", "RepetitionTime": 0.6, "EchoTime": 0.012}
DIFFUSION_TAGS = {"ScanningSequence": "EP", "RepetitionTime": 5.0, "EchoTime": 0.09}


def write_series(
    folder: Path, stem: str, *, slices: int = 12, zooms: tuple[float, ...] = THICK, tags: dict | None = None
) -> Path:
    """A tiny converter-named NIfTI series (16x16 in-plane), with a JSON sidecar when tags are given."""
    path = folder / f"{stem}.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((16, 16, slices), np.int16), np.diag([*zooms, 1.0])), str(path))
    if tags is not None:
        (folder / f"{stem}.json").write_text(json.dumps(tags), encoding="utf-8")
    return path


def write_study(folder: Path, *, sidecars: bool) -> None:
    """A realistic six-series brain tumour study plus the ADC map the scanner derived from its DWI."""
    series = [
        ("localizer_1", 3, ISO, {}),
        ("AX_FLAIR_3", 12, THICK, FLAIR_TAGS),
        ("T2_TSE_AX_5", 12, THICK, T2_TAGS),
        ("T1_MPRAGE_SAG_7", 16, ISO, MPRAGE_TAGS),
        ("ep2d_diff_3scan_trace_9", 12, THICK, {**DIFFUSION_TAGS, "ImageType": ["ORIGINAL", "PRIMARY", "TRACEW"]}),
        ("ep2d_diff_3scan_trace_ADC_10", 12, THICK, {**DIFFUSION_TAGS, "ImageType": ["DERIVED", "PRIMARY", "ADC"]}),
        ("MRHR_T1_AX_POST_GAD_13", 12, THICK, SE_T1_TAGS),
    ]
    for stem, slices, zooms, tags in series:
        write_series(folder, stem, slices=slices, zooms=zooms, tags=tags if sidecars else None)


def chosen(series_map: SeriesMap) -> dict[str, str]:
    return {seq: choice.source.name for seq, choice in series_map.sequences.items()}


def skip_reason(series_map: SeriesMap, name: str) -> str:
    return next(s.reason for s in series_map.skipped if s.source.name == name)


@pytest.mark.parametrize("sidecars", [True, False], ids=["sidecars", "names-only"])
def test_a_realistic_study_is_identified(tmp_path, sidecars):
    write_study(tmp_path, sidecars=sidecars)
    result = identify(read_nifti_folder(tmp_path))
    assert chosen(result) == {
        "flair": "AX_FLAIR_3.nii.gz",
        "t1": "T1_MPRAGE_SAG_7.nii.gz",
        "t1ce": "MRHR_T1_AX_POST_GAD_13.nii.gz",
        "t2": "T2_TSE_AX_5.nii.gz",
    }
    assert len(result.skipped) == 3
    assert skip_reason(result, "localizer_1.nii.gz").startswith("localiser or scout")
    assert "only 3 slices" in skip_reason(result, "localizer_1.nii.gz")
    assert "diffusion: name says DIFF" in skip_reason(result, "ep2d_diff_3scan_trace_9.nii.gz")
    assert "derived: name says TRACE, ADC" in skip_reason(result, "ep2d_diff_3scan_trace_ADC_10.nii.gz")
    t1ce = result.sequences["t1ce"]
    assert t1ce.series_description == "MRHR_T1_AX_POST_GAD"
    assert any("post-contrast (POST" in item for item in t1ce.evidence)
    if sidecars:
        assert "derived: ImageType DERIVED\\PRIMARY\\ADC" in skip_reason(result, "ep2d_diff_3scan_trace_ADC_10.nii.gz")
        assert result.sequences["flair"].evidence[:3] == [
            "inversion-recovery sequence",
            "TI 2500 ms nulls fluid",
            "TR 9000 ms long",
        ]
        assert result.sequences["t2"].evidence[0] == "TE 100 ms and TR 5000 ms long, no inversion"
    else:
        assert result.sequences["flair"].evidence == ["name says FLAIR (AX_FLAIR)"]
    # The MPRAGE carries no contrast word; it was acquired before the post-contrast T1.
    assert "no contrast evidence (series numbers 7, 13)" in result.sequences["t1"].evidence


def test_tags_decide_when_the_names_say_nothing(tmp_path):
    write_series(tmp_path, "series_a", tags=FLAIR_TAGS)
    write_series(tmp_path, "series_b", tags=T2_TAGS)
    write_series(tmp_path, "series_c", tags=SE_T1_TAGS)
    write_series(tmp_path, "series_d", tags={**SE_T1_TAGS, "ContrastBolusAgent": "Gadovist"})
    write_series(tmp_path, "series_e", tags={**SE_T1_TAGS, "ContrastBolusAgent": "NONE"})  # a placeholder, no agent
    with pytest.raises(UserError) as excinfo:
        identify(read_nifti_folder(tmp_path))
    assert excinfo.value.field == "t1"
    assert "series_c.nii.gz, series_e.nii.gz all look like T1" in excinfo.value.message
    (tmp_path / "series_e.nii.gz").unlink()
    result = identify(read_nifti_folder(tmp_path))
    assert chosen(result) == {
        "flair": "series_a.nii.gz",
        "t1": "series_c.nii.gz",
        "t1ce": "series_d.nii.gz",
        "t2": "series_b.nii.gz",
    }
    assert "ContrastBolusAgent Gadovist" in result.sequences["t1ce"].evidence
    assert result.skipped == []


def test_the_later_t1_of_an_unmarked_pair_is_post_contrast(tmp_path):
    write_series(tmp_path, "AX_FLAIR_2")
    write_series(tmp_path, "AX_T2_3")
    # The acquisition times win over the series numbers, which a re-numbering at the console can scramble.
    write_series(tmp_path, "AX_T1_4", tags={"AcquisitionTime": "10:31:07.500000"})
    write_series(tmp_path, "AX_T1_9", tags={"AcquisitionTime": "10:05:00"})
    result = identify(read_nifti_folder(tmp_path))
    assert result.sequences["t1ce"].source.name == "AX_T1_4.nii.gz"
    assert result.sequences["t1"].source.name == "AX_T1_9.nii.gz"
    assert "the later T1 of a pair" in result.sequences["t1ce"].evidence[-1]


def test_every_t1_after_the_first_post_contrast_one_is_post_contrast(tmp_path):
    write_series(tmp_path, "AX_FLAIR_2")
    write_series(tmp_path, "AX_T2_3")
    write_series(tmp_path, "AX_T1_PRE_4")
    write_series(tmp_path, "AX_T1_POST_GAD_8")
    write_series(tmp_path, "SAG_MPRAGE_9", zooms=ISO, slices=16)
    result = identify(read_nifti_folder(tmp_path))
    # Both post-contrast T1s compete; the 3D one wins by its finer voxels.
    assert result.sequences["t1ce"].source.name == "SAG_MPRAGE_9.nii.gz"
    assert result.sequences["t1ce"].evidence[1] == "acquired after AX_T1_POST_GAD_8.nii.gz (series numbers 9, 8)"
    assert "coarser voxels" in skip_reason(result, "AX_T1_POST_GAD_8.nii.gz")
    assert result.sequences["t1"].source.name == "AX_T1_PRE_4.nii.gz"


def test_two_identical_flairs_stop_and_an_override_settles_them(tmp_path):
    write_study(tmp_path, sidecars=True)
    second = write_series(tmp_path, "AX_FLAIR_REPEAT_11", tags=FLAIR_TAGS)
    with pytest.raises(UserError) as excinfo:
        identify(read_nifti_folder(tmp_path))
    assert excinfo.value.field == "flair"
    assert excinfo.value.message == (
        "flair: AX_FLAIR_3.nii.gz, AX_FLAIR_REPEAT_11.nii.gz all look like FLAIR and nothing separates them; "
        "set the flair override to the one to use"
    )
    assert "\n" not in excinfo.value.message and "--" not in excinfo.value.message
    result = identify(read_nifti_folder(tmp_path), {"flair": second})
    assert result.sequences["flair"].source == second
    assert result.sequences["flair"].evidence == ["explicit override"]
    assert skip_reason(result, "AX_FLAIR_3.nii.gz") == "flair set by explicit override"


def test_an_override_beats_every_rule(tmp_path):
    write_study(tmp_path, sidecars=True)
    localiser = tmp_path / "localizer_1.nii.gz"
    result = identify(read_nifti_folder(tmp_path), {"t2": localiser})
    assert result.sequences["t2"].source == localiser
    assert skip_reason(result, "T2_TSE_AX_5.nii.gz") == "t2 set by explicit override"


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"dwi": "AX_FLAIR_3.nii.gz"}, "dwi", "dwi: not a sequence (expected one of flair, t1, t1ce, t2)"),
        ({"t2": "elsewhere.nii.gz"}, "t2", "is not one of the study's series"),
        ({"t1": "AX_FLAIR_3.nii.gz", "flair": "AX_FLAIR_3.nii.gz"}, "flair", "is already the t1 series"),
    ],
)
def test_bad_overrides_name_their_field(tmp_path, overrides, field, message):
    write_study(tmp_path, sidecars=False)
    with pytest.raises(UserError) as excinfo:
        identify(read_nifti_folder(tmp_path), {seq: tmp_path / name for seq, name in overrides.items()})
    assert excinfo.value.field == field
    assert message in excinfo.value.message


def test_a_missing_sequence_names_the_override_that_settles_it(tmp_path):
    write_study(tmp_path, sidecars=False)
    (tmp_path / "T2_TSE_AX_5.nii.gz").unlink()
    write_series(tmp_path, "PD_AX_6")
    with pytest.raises(UserError) as excinfo:
        identify(read_nifti_folder(tmp_path))
    assert excinfo.value.field == "t2"
    assert excinfo.value.message == (
        "t2: no T2 series in the study; not recognised: PD_AX_6.nii.gz; set the t2 override to its file"
    )


def test_a_single_unmarked_t1_leaves_t1ce_missing(tmp_path):
    for stem in ("AX_FLAIR_2", "AX_T2_3", "AX_T1_4"):
        write_series(tmp_path, stem)
    with pytest.raises(UserError, match=r"^t1ce: no T1ce series .*among AX_T1_4.nii.gz") as excinfo:
        identify(read_nifti_folder(tmp_path))
    assert excinfo.value.field == "t1ce"


def test_only_a_localiser_is_a_missing_flair(tmp_path):
    write_series(tmp_path, "AAHead_Scout_1", slices=128, zooms=(1.6, 1.6, 1.6))
    with pytest.raises(
        UserError,
        match=r"^flair: no FLAIR series in the study; skipped: AAHead_Scout in AAHead_Scout_1.nii.gz "
        r"\(localiser or scout: name says SCOUT\); set the flair override",
    ):
        identify(read_nifti_folder(tmp_path))


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        ("T2_FLAIR_AX", "flair"),
        ("t1_flair_tra", "t1"),  # T1-FLAIR is T1-weighted
        ("tirm_dark-fluid_tra", "flair"),
        ("Sag 3D FSPGR", "t1"),
        ("T1W_SE", "t1"),
        ("T2W_TSE", "t2"),
        ("T1_T2_combined", None),
        ("PD_AX", None),
    ],
)
def test_weighting_by_name(description, expected):
    found = weighting_by_name(series_info(description))
    assert (found.conclusion if found else None) == expected


@pytest.mark.parametrize(
    ("description", "reason"),
    [
        ("T1_MPRAGE_SAG", None),  # MPRAGE is not an MPR reformat
        ("T2_SPACE_SAG", None),
        ("T1_MPR_COR", "derived: name says MPR"),
        ("SWI_Images", "susceptibility-weighted: name says SWI"),
        ("T2*_GRE_AX", "susceptibility-weighted: name says T2*"),
        ("ep2d_perf", "perfusion: name says PERF"),
        ("pCASL", "perfusion: name says PCASL"),
        ("C-SPINE_T2_SAG", "another body part: name says SPINE"),
    ],
)
def test_skip_rules_by_name(description, reason):
    assert skip_reasons(series_info(description)) == ([reason] if reason else [])


def test_skip_rules_by_tags():
    assert skip_reasons(series_info("AX_T2", body_part="LSPINE")) == ["another body part: BodyPartExamined LSPINE"]
    assert skip_reasons(series_info("AX_T2", shape=(64, 64, 24, 30))) == [
        "30 volumes (diffusion, perfusion or functional)"
    ]
    assert skip_reasons(series_info("AX_T2", sequence_name="*ep_b1000t")) == [
        "echo-planar (diffusion, perfusion or functional)"
    ]


@pytest.mark.parametrize(
    ("description", "expected"),
    [
        ("T1_AX_NON-CONTRAST", "pre"),
        ("T1 SE AX PRE", "pre"),
        ("T1_AX_NATIVE", "pre"),
        ("T1_AX+C", "post"),
        ("AX T1CE", "post"),
        ("T1_3D_GD", "post"),
        ("MRHR_T1_AX_POST_GAD", "post"),
        ("T1_SPACE_SAG", None),
        ("T1_PRE_POST", None),
    ],
)
def test_contrast_by_name(description, expected):
    found = contrast_by_name(series_info(description))
    assert (found.conclusion if found else None) == expected


def test_tags_overrule_the_name_and_say_so():
    series = series_info("AX_T1_7", repetition_time_ms=5000.0, echo_time_ms=100.0)
    assert identify([series, series_info("AX_FLAIR"), *_t1_pair()], {}).sequences["t2"].evidence == [
        "TE 100 ms and TR 5000 ms long, no inversion",
        "overruled: name says T1 (T1 in AX_T1_7)",
    ]


def test_sidecar_tags_override_the_file_name_and_times_become_ms(tmp_path):
    tags = {
        **MPRAGE_TAGS,
        "SeriesDescription": "T1 MPRAGE sag",
        "SeriesNumber": "7",
        "ProtocolName": "t1_mprage_sag_p2",
        "SequenceName": "*tfl3d1_16ns",
        "SequenceVariant": "SK_SP_MP",
        "ContrastBolusAgent": "Dotarem",
        "AcquisitionTime": "14:32:05.25",
        "ImageType": ["ORIGINAL", "PRIMARY", "M", "ND", "NORM"],
        "BodyPartExamined": "BRAIN",
    }
    info = read_nifti_series(write_series(tmp_path, "T1_MPRAGE_SAG_7", slices=16, zooms=ISO, tags=tags))
    assert info.series_description == "T1 MPRAGE sag"
    assert info.series_number == 7
    assert (info.repetition_time_ms, info.echo_time_ms, info.inversion_time_ms) == (2300.0, 3.0, 900.0)
    assert info.scanning_sequence == ("GR", "IR")
    assert info.sequence_variant == ("SK", "SP", "MP")
    assert info.contrast_agent == "Dotarem"
    assert info.acquisition_time == time(14, 32, 5, 250000)
    assert not info.derived
    assert (info.shape, info.spacing, info.n_slices, info.n_volumes) == ((16, 16, 16), ISO, 16, 1)


def test_dicom_keywords_fill_the_same_model():
    keywords = {
        "SeriesDescription": "AX FLAIR",
        "SeriesNumber": 3,
        "ScanningSequence": ["SE", "IR"],
        "RepetitionTime": "9000",
        "EchoTime": 90.0,
        "InversionTime": 2500.0,
        "AcquisitionTime": "101500.000000",
        "ImageType": "ORIGINAL\\PRIMARY\\M\\NORM",
    }
    info = series_from_keywords(Path("dicom/3"), keywords, shape=(256, 256, 26), spacing=THICK, times_in_seconds=False)
    assert (info.repetition_time_ms, info.inversion_time_ms, info.acquisition_time) == (9000.0, 2500.0, time(10, 15))
    assert info.scanning_sequence == ("SE", "IR") and info.image_type == ("ORIGINAL", "PRIMARY", "M", "NORM")


def test_a_file_name_without_a_series_number(tmp_path):
    info = read_nifti_series(write_series(tmp_path, "flair"))
    assert (info.series_description, info.series_number, info.acquisition_time) == ("flair", None, None)


def test_only_the_header_is_read(tmp_path):
    path = tmp_path / "AX_T2_5.nii"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 12), np.int16), np.eye(4)), str(path))
    with path.open("r+b") as f:  # cut the pixel data short: a header-only reader never notices
        f.truncate(400)
    assert read_nifti_series(path).shape == (8, 8, 12)


@pytest.mark.parametrize(
    ("sidecar", "message"),
    [
        ("{not json", "AX_T2_5.json: not valid JSON (line 1"),
        ("[1, 2]", "AX_T2_5.json: the JSON sidecar must be an object of tags"),
        ('{"RepetitionTime": "long"}', "tag RepetitionTime should be a number, not 'long'"),
        ('{"SeriesNumber": "five"}', "tag SeriesNumber should be a whole number, not 'five'"),
        ('{"AcquisitionTime": "25:00:00"}', "tag AcquisitionTime is not a time of day: '25:00:00'"),
        ('{"AcquisitionTime": "noon"}', "tag AcquisitionTime should be HH:MM:SS, not 'noon'"),
    ],
)
def test_bad_sidecars_are_one_line_user_errors(tmp_path, sidecar, message):
    path = write_series(tmp_path, "AX_T2_5")
    (tmp_path / "AX_T2_5.json").write_text(sidecar, encoding="utf-8")
    with pytest.raises(UserError) as excinfo:
        read_nifti_series(path)
    assert message in excinfo.value.message and "\n" not in excinfo.value.message


def test_unreadable_inputs_are_user_errors(tmp_path):
    (tmp_path / "broken_2.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(UserError, match=r"broken_2.nii.gz: not a readable NIfTI header"):
        read_nifti_series(tmp_path / "broken_2.nii.gz")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match=r"empty: no NIfTI series"):
        read_nifti_folder(empty)


def series_info(
    description: str, *, number: int | None = None, shape: tuple[int, ...] = (8, 8, 12), **tags
) -> SeriesInfo:
    """A series from its description and tags alone, as identification sees it."""
    return SeriesInfo(
        source=Path(f"{description}_{number}.nii.gz"),
        series_description=description,
        series_number=number,
        shape=shape,
        spacing=THICK,
        **tags,
    )


def _t1_pair() -> list[SeriesInfo]:
    return [series_info("AX_T1_PRE", number=4), series_info("AX_T1_POST", number=5)]
