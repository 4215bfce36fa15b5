"""report.html: notice, verdict, referrals, escaping, offline self-containment."""

from __future__ import annotations

import re

import pytest

from neurotriage import NOTICE
from neurotriage.diagnosis.provenance import ModelRef
from neurotriage.report.html import render_html
from neurotriage.report.inputs import ReportInput
from neurotriage.report.text import NOT_AVAILABLE, PROVISIONAL_REFERRAL, fmt

from .conftest import HOSTILE_NAME

PNG = b"\x89PNG\r\n\x1a\nfake"


def _html(report: ReportInput) -> str:
    return render_html(report, {"triplanar": PNG, "montage": PNG, "regions": PNG})


def test_notice_at_top_and_bottom(make_input):
    html = _html(make_input("left"))
    assert html.count(NOTICE) == 2
    body = html[html.index("<body>") :]
    assert body.index(NOTICE) < body.index("Patient") and body.rindex(NOTICE) > body.index("Provenance")


def test_discordant_verdict_is_flagged(make_input):
    html = _html(make_input("left", verdict="discordant"))
    assert re.search(r'class="verdict flag"', html)
    assert "Flagged for clinician review" in html
    assert "discordant" in html


def test_concordant_verdict_is_not_flagged(make_input):
    html = _html(make_input("left", verdict="concordant"))
    assert 'class="verdict ok"' in html and "Flagged for clinician review" not in html


def test_shows_finding_crosscheck_referrals_and_provenance(make_input):
    report = make_input("left", verdict="discordant")
    html = _html(report)
    assert report.locate.summary in html
    assert "frontal lobe" in html and "Broca&#39;s area (left)" in html  # region table and eloquent areas
    vasari = html[html.index('id="vasari"') : html.index('id="crosscheck"')]
    for shown in (
        "Location",
        "Lobe of the tumour&#39;s epicentre",
        "frontal lobe",
        "25.0 % (6-33 %)",
        "F5 = 4",
        "Invades deep white matter",
        "yes: corpus callosum",
        "Enhancing tumour crosses the midline",
    ):
        assert shown in vasari, shown  # grouped, in words, with the feature and its code
    assert "_" not in vasari.replace('id="vasari"', "")
    assert "tumour is ipsilateral" in html  # why a symptom is not explained
    assert "Adams and Victor" in html  # the rule's source
    assert "left primary motor" in html  # predicted regions
    first, second = html.index("Dr Ada Fictional"), html.index("Dr Bea Example")
    assert first < second  # ranked
    assert "awake craniotomy available (eloquent cortex)" in html and "Imaginary General" in html
    assert ">93.4<" in html and ">7<" in html  # score; wait days read from the doctor
    assert "Concordance score: 1.00" in html or "Concordance score: 0.00" in html
    assert "unet3d-brats-small" in html and "ab" * 32 in html and "0" * 64 in html


def test_hostile_text_is_escaped(make_input):
    evil_reason = '<img src=x onerror="alert(1)">'
    referrals = [
        {"rank": 1, "score": 1, "doctor": {"name": HOSTILE_NAME}, "hospital": {"name": "H"}, "reasons": [evil_reason]}
    ]
    html = _html(make_input("left", name=HOSTILE_NAME, referrals=referrals))
    assert "<script>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt; O&#39;Brien &amp; Ñoño 李" in html


def test_self_contained(make_input):
    html = _html(make_input("left"))
    assert html.count("data:image/png;base64,") == 3
    assert not re.search(r'(src|href)\s*=\s*"(?!data:)', html), "no external resources"
    assert "@media print" in html


@pytest.mark.parametrize(
    ("missing", "message"), [("locate", "Localisation not available"), ("crosscheck", "Cross-check not available")]
)
def test_missing_stages_say_not_available(make_input, missing, message):
    html = _html(make_input("left", **{missing: None}))
    assert message in html
    assert f'Verdict: <span class="label">{NOT_AVAILABLE}' in html or missing == "locate"


def test_healthy_scan_says_no_tumour(make_input):
    html = _html(make_input(None, verdict="no tumour found despite focal symptoms"))
    assert "No tumour found" in html and 'class="verdict flag"' in html


def test_referral_of_an_unconfirmed_patient_is_provisional(make_input):
    confirmed = _html(make_input("left", patient={"id": 17, "name": "Jo Test", "mrn": "M17", "mrn_issuer": "HOSP"}))
    assert "M17 (HOSP)" in confirmed and PROVISIONAL_REFERRAL not in confirmed
    unconfirmed = _html(make_input("left", patient={"id": 17, "name": "JO TEST", "mrn": "M17", "confirmed": False}))
    assert unconfirmed.count(PROVISIONAL_REFERRAL) == 1
    assert unconfirmed.index("Recommended doctors") < unconfirmed.index(PROVISIONAL_REFERRAL)


def test_a_user_supplied_model_is_named_with_its_folder(make_input):
    report = make_input("left")
    origin = "nnunet:/models/Dataset137_BraTS2021/nnUNetTrainer__nnUNetPlans__3d_fullres"
    supplied = report.model_copy(update={"provenance": report.provenance.model_copy(update={"model_origin": origin})})
    html = _html(supplied)
    assert "User-supplied model" in html and origin in html and "its accuracy is the user&#39;s claim" in html
    assert "User-supplied model" not in _html(report)


def test_the_uncertainty_figure_and_the_uncertain_tissue_sit_beside_the_volumes(make_input):
    report = make_input("left")
    html = render_html(report, {"triplanar": PNG, "uncertainty": PNG, "montage": PNG, "regions": PNG})
    figure = html[html.index('<figure class="uncertainty">') :]
    assert "<strong>Uncertainty.</strong>" in figure[: figure.index("</figure>")]
    assert "0 where one label is certain to 1 where all four are equally likely" in figure
    row = html[html.index('<tr id="uncertain-volumes">') :]
    row = row[: row.index("</tr>")]
    cells = re.findall(r'<td class="num">([^<]*)</td>', row)
    keys = ("whole_tumour", "tumour_core", "enhancing", "necrosis", "edema")  # the order of the volumes row
    assert cells == [fmt(report.uncertainty.ml[key]) for key in keys]
    assert float(cells[0]) > 0
    assert "within 5 mm of it" in html[html.index('id="uncertain-note"') :]
    without = report.model_copy(update={"uncertainty": None})
    assert "uncertain-volumes" not in _html(without)


def test_an_ensemble_names_every_member_with_its_sha256(make_input):
    report = make_input("left")
    members = [
        {"model_id": "neurotriage default v8", "sha256": "1" * 64},
        {"model_id": "MONAI bundle brats_mri_segmentation 0.5.3", "sha256": "2" * 64, "origin": "monai-bundle:/b"},
    ]
    models = [ModelRef.model_validate(m) for m in members]
    update = {"model_id": "ensemble of 2: neurotriage default v8 + MONAI bundle", "models": models}
    html = _html(report.model_copy(update={"provenance": report.provenance.model_copy(update=update)}))
    assert "Ensemble member 1" in html and "neurotriage default v8, SHA-256 " + "1" * 64 in html
    assert "MONAI bundle brats_mri_segmentation 0.5.3, SHA-256 " + "2" * 64 + ", monai-bundle:/b" in html
    assert "Ensemble member" not in _html(report)
