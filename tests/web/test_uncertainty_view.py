"""The uncertainty map in the web viewer: an off-by-default toggle when the finding has one, served by the
authenticated image route to its patient's care team only, and audited."""

from __future__ import annotations

import json
import re
from html import unescape

from sqlalchemy import select

from neurotriage.clinical import db
from neurotriage.web.models import AuditEvent

from .test_access import NOT_IN_TEAM, patient_with_finding, signed_in

TOGGLE = '<input type="checkbox" id="uncertainty-toggle">'


def viewer_config(page: str) -> dict:
    return json.loads(unescape(re.search(r'<canvas id="viewer" data-config="([^"]*)"', page).group(1)))


def test_the_uncertainty_map_is_an_overlay_for_the_care_team_only(web_settings, tmp_path):
    with signed_in(web_settings, "clin") as clin:
        pid, fid, _ = patient_with_finding(clin, web_settings, tmp_path, "Una Certain")
        page = clin.get(f"/reports/{fid}").text
        assert "uncertainty-toggle" not in page and viewer_config(page)["uncertainty"] is None  # a finding without one
        assert clin.get(f"/reports/{fid}/images/uncertainty.nii.gz").status_code == 400
        (tmp_path / "C_uncertainty.nii.gz").write_bytes(b"uncertainty bytes")  # beside C_seg.nii.gz
        page = clin.get(f"/reports/{fid}").text
        assert TOGGLE in page  # unchecked: off until asked for
        config = viewer_config(page)
        assert config["uncertainty"] == f"/reports/{fid}/images/uncertainty.nii.gz"
        assert config["uncertainty_from"] == 0.1  # the report figure's heat starts there too
        assert clin.get(config["uncertainty"]).content == b"uncertainty bytes"
    with signed_in(web_settings, "doc") as doc:  # a clinician outside the patient's care team
        denied = doc.get(f"/reports/{fid}/images/uncertainty.nii.gz")
        assert denied.status_code == 403 and NOT_IN_TEAM in denied.text and "uncertainty bytes" not in denied.text
    with db.transaction(web_settings.database_url) as session:
        events = session.scalars(
            select(AuditEvent).where(AuditEvent.target == f"finding:{fid}/images/uncertainty.nii.gz")
        ).all()
    assert [(e.username, e.action, e.patient_id) for e in events] == [
        ("clin", "download", pid),
        ("clin", "download", pid),
    ]  # both of clin's, the one for a map not there yet too; doc was refused before anything was read


def test_the_viewer_script_shows_the_map_only_when_asked(client):
    script = client.get("/static/viewer.js").text
    assert '$("uncertainty-toggle")' in script and "uncertaintyToggle?.addEventListener" in script
    assert 'colormap: "hot", opacity: 0' in script  # loaded hidden, shown when the toggle is checked
