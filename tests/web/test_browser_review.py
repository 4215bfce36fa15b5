"""A clinician's review taking effect, in Debian's chromium: upload a right frontal tumour, override the location to
the left hemisphere and the verdict, see the override on the report, the patient page and the API with the
cross-check and referral computed again, then add a symptom, see the cross-check stale and re-run it."""

from __future__ import annotations

import pytest

from .test_browser import DIAGNOSIS_TIMEOUT_MS, save, sign_in_and_add_patient


def api(page, server: str, path: str) -> dict:
    """GET an API path with the page's session."""
    answer = page.request.get(f"{server}{path}")
    assert answer.ok, answer.text()
    return answer.json()


def override_to_the_left_and_partial(page) -> None:
    """Fill the report page's review form: the left side, the regions as they were, a partially concordant verdict."""
    form = page.locator("#review")
    form.locator("select[name=location_decision]").select_option("override")
    form.locator("select[name=location_hemisphere]").select_option("left")
    form.locator("select[name=verdict_decision]").select_option("override")
    form.locator("select[name=verdict_override]").select_option("partially concordant")
    form.locator("textarea[name=comment]").fill("Left on review; the weakness is partly explained.")
    form.locator("button").click()
    page.wait_for_load_state()


@pytest.mark.slow
def test_an_override_takes_effect_everywhere_and_a_new_symptom_makes_it_stale(browser_page, server, case_zip):
    page = browser_page
    sign_in_and_add_patient(page, server)  # left-sided weakness: a right frontal tumour explains it
    patient_url = page.url
    page.set_input_files("input[name=case_zip]", str(case_zip))
    page.fill("input[name=study_date]", "2024-05-17")  # a BraTS case has no DICOM StudyDate
    page.click("#upload button")
    page.wait_for_url("**/jobs/*")
    page.locator("#job-report").wait_for(state="visible", timeout=DIAGNOSIS_TIMEOUT_MS)
    page.click("#job-report a")
    page.wait_for_url("**/reports/*")
    finding_id = int(page.url.rsplit("/", 1)[1])
    assert page.locator("#verdict").inner_text() == "concordant"
    before = api(page, server, f"/api/findings/{finding_id}")
    assert before["current"]["location"]["hemisphere"] == "right" and before["current"]["source"] == "automatic"

    override_to_the_left_and_partial(page)
    summary = page.locator("#summary").inner_text()
    assert summary.startswith("Left") and "clinician override by clin" in summary
    assert page.locator("#verdict").inner_text() == "partially concordant"
    # A left frontal tumour does not explain left-sided weakness: computed again, the cross-check says so.
    assert "(computed: discordant)" in page.content()
    assert "Cross-check computed again for the corrected location by clin" in page.content()
    assert page.locator("#referrals tbody tr").count() >= 1
    assert "(current)" in page.locator("#review-history").inner_text()
    save(page.screenshot(full_page=True), "web_review_override.png")

    after = api(page, server, f"/api/findings/{finding_id}")
    current = after["current"]
    assert (current["location"]["hemisphere"], current["location"]["source"]) == ("left", "clinician")
    assert (current["verdict"], current["source"]) == ("partially concordant", "clinician")
    assert (current["crosscheck"]["origin"], current["crosscheck"]["verdict"]) == ("review", "discordant")
    assert after["automatic"]["location"]["hemisphere"] == "right" and current["reviewed_by"] == "clin"
    assert after["referrals"] and after["referrals"] != before["referrals"]  # ranked again for the left side

    page.goto(patient_url)
    (study,) = api(page, server, f"/api/patients/{patient_url.rsplit('/', 1)[1]}")["studies"]
    assert study["date"] == "2024-05-17" and "(2024-05-17)" in page.content()
    finding = page.locator(f"section.finding:has(a[href='/reports/{finding_id}'])")
    assert "clinician override by clin" in finding.locator(".summary").inner_text()
    assert finding.locator(".verdict").inner_text() == "partially concordant"
    assert finding.locator(".stale").count() == 0

    symptom = page.locator("#add-symptom")
    symptom.locator("select[name=code]").select_option("aphasia")
    symptom.locator("button").click()
    page.wait_for_load_state()
    assert "Stale" in finding.locator(".stale").inner_text()
    assert api(page, server, f"/api/findings/{finding_id}")["crosscheck_stale"] is True
    finding.locator("button:has-text('Re-run cross-check')").click()
    page.wait_for_url(patient_url)
    assert finding.locator(".stale").count() == 0
    rerun = api(page, server, f"/api/findings/{finding_id}")
    assert rerun["crosscheck_stale"] is False and rerun["current"]["crosscheck"]["origin"] == "rerun"
    assert rerun["current"]["location"]["hemisphere"] == "left"  # the override still holds
