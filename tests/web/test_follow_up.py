"""Follow-up volumetry: with two or more studies with findings, the patient page and API show each compartment's
volume by study date, the change from the study before (ml and %) against the volumetric RANO thresholds,
and an inline SVG plot."""

from __future__ import annotations

import re
from datetime import date

import pytest

from neurotriage.anatomy.location import parse_location
from neurotriage.clinical import db, decisions, intake
from neurotriage.clinical.models import Study, utcnow
from neurotriage.web.followup import NOTE

from ..clinical.locates import locate
from .conftest import chromium_page
from .test_browser import pixels, save, sign_in


def _store(session, pid: int, case: str, frontal_ml: float, enhancing: float, taken: date | None, volumes=None) -> None:
    """A finding of study `case`: whole tumour frontal_ml + 4 ml, core 8, necrosis 2, the rest oedema (or `volumes`)."""
    extra = {"volumes_ml": volumes} if volumes else {}
    location = parse_location(locate("right", regions=(("frontal_lobe", frontal_ml),), enhancing=enhancing, **extra))
    finding = decisions.store_finding(session, pid, case, location, "m")
    session.get(Study, finding.study_id).study_date = taken


@pytest.fixture
def followed(web_settings) -> int:
    """A patient with three studies: the first stored is the second taken, one study was diagnosed twice
    (the newer finding counts), the last has no study date (it counts from the day it was added: today)."""
    with db.transaction(web_settings.database_url) as session:
        pid = intake.add_patient(session, "Follow Subject").id
        _store(session, pid, "MARCH", 26.0, 6.0, date(2020, 3, 1))  # whole 30, enhancing 6, oedema 22
        _store(session, pid, "JANUARY", 96.0, 9.0, date(2020, 1, 1))  # replaced by the re-run below
        _store(session, pid, "JANUARY", 16.0, 4.0, date(2020, 1, 1))  # whole 20, enhancing 4, oedema 12
        _store(session, pid, "UNDATED", 6.0, 1.0, None)  # whole 10, enhancing 1, oedema 2
        return pid


def test_the_api_gives_volumes_and_changes_by_study_date(client, followed):
    follow = client.get(f"/api/patients/{followed}").json()["follow_up"]
    points = follow["points"]
    today = utcnow().date().isoformat()
    assert [(p["date"], p["dated_by"]) for p in points] == [("2020-01-01", "study"), ("2020-03-01", "study"),
                                                            (today, "upload")]  # fmt: skip
    assert [p["volumes_ml"]["whole_tumour"] for p in points] == [20.0, 30.0, 10.0]
    assert points[0]["change_ml"] is None and points[0]["change_pct"] is None
    second, third = points[1], points[2]
    assert second["change_ml"] == {"whole_tumour": 10.0, "tumour_core": 0.0, "enhancing": 2.0, "necrosis": 0.0,
                                   "edema": 10.0}  # fmt: skip
    assert second["change_pct"]["whole_tumour"] == pytest.approx(50.0)
    assert second["change_pct"]["edema"] == pytest.approx(100 * 10 / 12)
    assert second["crossed"] == {"whole_tumour": "progression", "tumour_core": None, "enhancing": "progression",
                                 "necrosis": None, "edema": "progression"}  # fmt: skip
    assert third["change_pct"]["whole_tumour"] == pytest.approx(-200 / 3)
    assert third["crossed"]["whole_tumour"] == "response" and third["crossed"]["tumour_core"] is None
    assert (follow["progression_pct"], follow["response_pct"], follow["note"]) == (40.0, -65.0, NOTE)


def test_the_page_shows_a_table_and_a_plot(client, followed):
    page = client.get(f"/patients/{followed}").text
    table = page[page.index('<table id="follow-up-table">') : page.index("</table>", page.index("follow-up-table"))]
    cells = re.findall(r'<td data-key="whole_tumour">([^<]*)(?:<br><small( class="flag")?>([^<]*)</small>)?', table)
    assert cells == [
        ("20.0", "", ""),
        ("30.0", ' class="flag"', "+10.0 ml, +50 % (≥ +40 %)"),
        ("10.0", ' class="flag"', "−20.0 ml, −67 % (≤ −65 %)"),
    ]
    assert '<td data-key="tumour_core">8.0<br><small>+0.0 ml, +0 %</small>' in table
    assert "(added; no study date)" in table and "not a RANO assessment" in page
    plot = page[page.index('<svg xmlns="http://www.w3.org/2000/svg"') : page.index("</svg>")]
    assert len(re.findall(r"<polyline ", plot)) == 5
    titles = re.findall(r"<title>Whole tumour, ([-\d]+): ([\d.]+) ml</title>", plot)
    assert [ml for _, ml in titles] == ["20.0", "30.0", "10.0"]
    whole = re.search(r'<polyline points="([^"]+)"[^>]*data-key="whole_tumour"', plot).group(1)
    xs, ys = zip(*(map(float, pair.split(",")) for pair in whole.split()), strict=True)
    assert xs == tuple(sorted(xs)) and ys[1] < ys[0] < ys[2]  # later to the right; more volume higher up
    assert "<script" not in plot and "style=" not in plot


def test_one_study_shows_no_follow_up(client, web_settings):
    with db.transaction(web_settings.database_url) as session:
        pid = intake.add_patient(session, "Single Study").id
        _store(session, pid, "ONLY", 16.0, 4.0, date(2020, 1, 1))
        _store(session, pid, "ONLY", 26.0, 4.0, date(2020, 1, 1))  # a re-run of the same study
    assert client.get(f"/api/patients/{pid}").json()["follow_up"] is None
    assert "follow-up-plot" not in client.get(f"/patients/{pid}").text


@pytest.mark.slow
def test_the_follow_up_section_in_the_browser(server, web_settings):
    """Three dated studies of growth then response, as a clinician sees them (the README's screenshot)."""
    with db.transaction(web_settings.database_url) as session:
        pid = intake.add_patient(session, "Follow Browser").id
        for case, taken, (enhancing, necrosis, edema) in (
            ("FIRST", date(2024, 1, 10), (6.0, 2.0, 12.0)),  # whole 20 ml
            ("SECOND", date(2024, 4, 12), (10.0, 3.0, 17.0)),  # 30 ml: +50 %
            ("THIRD", date(2024, 7, 15), (2.0, 1.0, 5.0)),  # 8 ml: -73 %
        ):
            core = enhancing + necrosis
            volumes = {"whole_tumour": core + edema, "tumour_core": core, "enhancing": enhancing,
                       "necrosis": necrosis, "edema": edema}  # fmt: skip
            _store(session, pid, case, core + edema - 4.0, enhancing, taken, volumes)
    with chromium_page() as page:
        sign_in(page, server)
        page.goto(f"{server}/patients/{pid}")
        section = page.locator("#follow-up")
        plot = section.locator("svg").bounding_box()
        assert plot["width"] > 300 and plot["height"] > 150, plot
        assert section.locator("#follow-up-table tbody tr").count() == 3
        shot = section.screenshot()
    save(shot, "web_follow_up.png")
    rgb = pixels(shot)
    coloured = (rgb.max(axis=2) - rgb.min(axis=2)) > 80  # the compartments' lines; text and axes are grey
    assert coloured.mean() > 0.002, f"no plotted lines: {coloured.mean():.2%} coloured pixels"
