"""The whole journey in a real browser (Debian's chromium through Playwright, WebGL2 in SwiftShader).

Sign in, create a patient with a symptom, upload a synthetic case, wait for the diagnosis, then
judge the NiiVue viewer from screenshots (toDataURL on a WebGL canvas comes back blank): it drew an
image, and in the axial view a right-hemisphere tumour sits on the image's left (radiological).
Signing out in the browser ends the session on the server: a copy of its cookie is refused after.
"""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from neurotriage import NOTICE
from neurotriage.clinical import db, intake

from .helpers import PASSWORD

COOKIE = "neurotriage_session"
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
DIAGNOSIS_TIMEOUT_MS = 90_000


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)


def save(png: bytes, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / name).write_bytes(png)


def assert_not_blank(rgb: np.ndarray) -> None:
    lit = (rgb.max(axis=2) > 30).mean()
    assert lit > 0.05 and rgb.std() > 10, f"viewer looks blank: {lit:.1%} lit pixels, std {rgb.std():.1f}"


def tumour_column_is_left_of_centre(rgb: np.ndarray) -> tuple[float, float]:
    """(x of the column with most coloured pixels, x of the brain's centre) in an axial view."""
    coloured = (rgb.max(axis=2) - rgb.min(axis=2)) > 80  # overlay and crosshair; the MRI is grey
    brain = np.flatnonzero((rgb.max(axis=2) > 30).any(axis=0))
    return float(np.argmax(coloured.sum(axis=0))), float((brain[0] + brain[-1]) / 2)


def sign_in(page, base: str) -> None:
    """Open the patient list signed out, sign in on the login page it leads to, and land on the list."""
    page.goto(f"{base}/patients")
    assert page.url.endswith("/login")
    page.fill("input[name=username]", "clin")
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Sign in')")
    page.wait_for_url("**/patients")


def sign_in_and_add_patient(page, base: str) -> None:
    sign_in(page, base)
    form = page.locator("#add-patient")
    form.locator("input[name=name]").fill("Browser Patient")
    form.locator("input[name=city]").fill("Leeds")
    form.locator("input[name=lat]").fill("53.80")
    form.locator("input[name=lon]").fill("-1.55")
    form.locator("button").click()
    page.wait_for_url("**/patients/*")
    symptom = page.locator("#add-symptom")
    symptom.locator("select[name=code]").select_option("hemiparesis")
    symptom.locator("select[name=side]").select_option("left")
    symptom.locator("button").click()
    page.wait_for_load_state()
    assert "left" in page.locator("#symptoms").inner_text()


@pytest.mark.slow
def test_browser_journey_from_new_patient_to_referral(browser_page, server, case_zip):
    page = browser_page
    sign_in_and_add_patient(page, server)
    page.set_input_files("input[name=case_zip]", str(case_zip))
    page.click("#upload button")
    page.wait_for_url("**/jobs/*")
    page.locator("#job-report").wait_for(state="visible", timeout=DIAGNOSIS_TIMEOUT_MS)
    assert page.locator("#job-status").inner_text() == "done"
    assert "segment" in page.locator("#job-stages").inner_text()
    save(page.screenshot(full_page=True), "web_job.png")

    page.click("#job-report a")
    page.wait_for_url("**/reports/*")
    # Locator waits, not wait_for_function: the page's CSP forbids the eval that polling a string needs.
    page.locator("#viewer[data-ready='1'], #viewer[data-ready='error']").wait_for(timeout=30_000)
    assert page.locator("#viewer").get_attribute("data-ready") == "1", page.locator("#viewer-status").inner_text()
    assert page.evaluate("window.neurotriageViewer.opts.isRadiologicalConvention") is True
    page.wait_for_timeout(500)  # one more frame after the crosshair moved
    multiplanar = page.locator("#viewer").screenshot()
    save(multiplanar, "web_viewer_multiplanar.png")
    assert_not_blank(pixels(multiplanar))

    assert "right" in page.locator("#summary").inner_text().lower()
    assert page.locator("#verdict").inner_text() == "concordant"
    assert page.locator("#referrals tbody tr").count() >= 1
    assert "final" in page.locator("#referral-status").inner_text()
    assert NOTICE in page.content()
    save(page.screenshot(full_page=True), "web_report_full.png")
    save(page.screenshot(full_page=True, clip={"x": 0, "y": 0, "width": 1280, "height": 1300}), "web_report.png")

    page.evaluate("window.neurotriageViewer.setSliceType(window.neurotriageViewer.sliceTypeAxial)")
    page.wait_for_timeout(300)
    axial = page.locator("#viewer").screenshot()
    save(axial, "web_viewer_axial.png")
    column, centre = tumour_column_is_left_of_centre(pixels(axial))
    assert column < centre, f"right-hemisphere tumour drawn at x={column}, right of the centre x={centre}"

    page.locator("#opacity").fill("0.2")
    assert page.evaluate("window.neurotriageViewer.volumes[1].opacity") == pytest.approx(0.2)
    page.select_option("#sequence", "flair")
    page.locator("#viewer[data-ready='1']").wait_for(timeout=30_000)
    assert page.evaluate("window.neurotriageViewer.volumes[0].name") == "flair.nii.gz"
    assert page.evaluate("window.neurotriageViewer.volumes[1].opacity") == pytest.approx(0.2)


def upload_and_watch_progress(page, case_zip: Path) -> str:
    """Upload the case on the patient page and wait until the job page shows a live stage; returns its URL."""
    page.set_input_files("input[name=case_zip]", str(case_zip))
    page.click("#upload button")
    page.wait_for_url("**/jobs/*")
    page.locator("#job-stages tr").first.wait_for()  # job.js renders the stages it polls from /api/jobs
    assert page.locator("#job-status").inner_text() in ("running", "done")
    return page.url


def lands_on(page, cookies: list[dict], url: str) -> str:
    """Where a fresh context of the same browser, holding only `cookies`, ends up when it opens `url`."""
    context = page.context.browser.new_context()
    try:
        context.add_cookies(cookies)
        other = context.new_page()
        other.goto(url)
        return other.url
    finally:
        context.close()


def sent_with(cookie: dict, method: str, url: str, **kwargs) -> httpx.Response:
    """One request carrying `cookie` and no other, with no cookie jar that a refusal could clear."""
    headers = {"Cookie": f"{cookie['name']}={cookie['value']}"} | kwargs.pop("headers", {})
    return httpx.request(method, url, headers=headers, timeout=30, **kwargs)


@pytest.mark.slow
def test_signing_out_in_the_browser_refuses_the_old_cookie(browser_page, server, case_zip, web_settings):
    page = browser_page
    sign_in_and_add_patient(page, server)
    job_url = upload_and_watch_progress(page, case_zip)
    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    cookies = page.context.cookies()
    cookie = next(c for c in cookies if c["name"] == COOKIE)

    def api_write(name: str) -> int:
        headers = {"X-CSRF-Token": token}
        return sent_with(cookie, "POST", f"{server}/api/patients", json={"name": name}, headers=headers).status_code

    # While the session lives, a copy of its cookie (and the page's CSRF token) works for pages, the API and writes.
    assert lands_on(page, cookies, job_url) == job_url
    assert sent_with(cookie, "GET", f"{server}/api/patients").status_code == 200
    assert api_write("Old cookie before sign-out") == 201

    page.click("button:has-text('Sign out')")
    page.wait_for_url("**/login")

    assert lands_on(page, cookies, job_url) == f"{server}/login"
    assert sent_with(cookie, "GET", f"{server}/api/patients").status_code == 401
    assert api_write("Old cookie after sign-out") == 401
    form = {"name": "Old cookie after sign-out (form)", "csrf_token": token}
    form_write = sent_with(cookie, "POST", f"{server}/patients", data=form)
    assert (form_write.status_code, form_write.headers.get("location")) == (303, "/login")
    with db.transaction(web_settings.database_url) as session:
        names = [p.name for p in intake.list_patients(session, "Old cookie")]
    assert names == ["Old cookie before sign-out"]

    # The diagnosis goes on without its uploader; signing in again shows it ending (and the server stops idle).
    sign_in(page, server)
    page.goto(job_url)
    page.locator("#job-report").wait_for(state="visible", timeout=DIAGNOSIS_TIMEOUT_MS)
    assert page.locator("#job-status").inner_text() == "done"
