"""The report prints on two or three A4 pages: a full report (tumour, figures with the uncertainty map, ten
referrals)."""

from __future__ import annotations

import re

from neurotriage.clinical.scoring import Recommendation
from neurotriage.report.figures import montage_figure, regions_figure, to_png, triplanar_figure, uncertainty_figure
from neurotriage.report.html import render_html

from ..web.conftest import chromium_page
from .conftest import REFERRALS

REASONS = [
    "neurosurgery: resection and biopsy (+30.0)",
    "expertise in frontal lobe, primary motor cortex (+12.5)",
    "awake craniotomy at the hospital: yes (eloquent cortex)",
    "neuro-oncologist: no (enhancing tumour)",
    "needs met: 1 of 2 (+10.0)",
    "64 km from home (+9.1)",
    "wait 21 days (+6.5)",
]


def _ten_referrals() -> list[dict]:
    base = Recommendation.model_validate(REFERRALS[0]).model_dump()
    return [base | {"rank": rank, "score": 90.0 - rank, "reasons": REASONS} for rank in range(1, 11)]


def test_a_full_report_prints_on_at_most_three_a4_pages(make_input, tmp_path):
    report = make_input("left", verdict="discordant", referrals=_ten_referrals())
    image, seg, affine = report.imaging.images["flair"], report.imaging.seg, report.imaging.affine
    figures = {
        "triplanar": to_png(triplanar_figure(image, seg, affine)),
        "uncertainty": to_png(uncertainty_figure(image, seg, report.imaging.uncertainty, affine)),
        "montage": to_png(montage_figure(image, seg, affine)),
        "regions": to_png(regions_figure(report.locate.regions)),
    }
    page_file = tmp_path / "report.html"
    page_file.write_text(render_html(report, figures), encoding="utf-8")
    with chromium_page() as page:
        page.goto(page_file.as_uri())
        pdf = page.pdf(format="A4")
    pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf))
    assert 2 <= pages <= 3, f"{pages} pages"
