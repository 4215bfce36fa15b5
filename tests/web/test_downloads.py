"""A finding's report files can be downloaded: only those its report.json lists, by those who may see it."""

from __future__ import annotations

import json

import pytest

from neurotriage.clinical import db
from neurotriage.web.models import AuditEvent

from .helpers import add_finding, make_client, sign_in

LISTED = ["C_seg.nii.gz", "fhir_bundle.json", "report.html", "triplanar.png"]


@pytest.fixture
def finding(web_settings, tmp_path) -> int:
    """A stored finding whose report folder lists a segmentation, a FHIR bundle, a page and a figure."""
    finding = add_finding(web_settings, "Download Subject", tmp_path)[1]
    for name in LISTED:
        (tmp_path / name).write_bytes(b"{}" if name.endswith(".json") else b"data of " + name.encode())
    (tmp_path / "report.json").write_text(json.dumps({"files": LISTED}))
    (tmp_path / "secret.txt").write_text("not listed")
    return finding


def test_the_report_page_offers_the_listed_data_files_and_a_print_view(client, finding):
    page = client.get(f"/reports/{finding}").text
    for name in ("report.json", "fhir_bundle.json", "C_seg.nii.gz"):
        assert f'href="/reports/{finding}/files/{name}"' in page
    assert "triplanar.png" not in page and f'href="/reports/{finding}/report.html" target="_blank"' in page


def test_a_listed_file_downloads_as_an_attachment_and_is_audited(client, web_settings, finding):
    got = client.get(f"/reports/{finding}/files/C_seg.nii.gz")
    assert got.status_code == 200 and got.content == b"data of C_seg.nii.gz"
    assert got.headers["content-disposition"].startswith("attachment")
    with db.transaction(web_settings.database_url) as session:
        last = session.query(AuditEvent).order_by(AuditEvent.id.desc()).first()
        assert (last.action, last.target) == ("download", f"finding:{finding}/files/C_seg.nii.gz")


@pytest.mark.parametrize("name", ["secret.txt", "triplanar.png", "../web.db", "%2e%2e/report.json"])
def test_files_not_offered_are_not_served(client, finding, name):
    assert client.get(f"/reports/{finding}/files/{name}").status_code == 404


def test_someone_outside_the_care_team_cannot_download(web_settings, finding):
    with make_client(web_settings) as doc:
        sign_in(doc, "doc")
        assert doc.get(f"/reports/{finding}/files/report.json").status_code == 403
