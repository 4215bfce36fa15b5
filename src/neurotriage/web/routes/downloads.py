"""Downloads of a finding's report files (web/report_files.py says which), audited."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from neurotriage.errors import NotFound
from neurotriage.web import access
from neurotriage.web.deps import CurrentUser, SessionDep, audit
from neurotriage.web.report_files import report_files

router = APIRouter(include_in_schema=False)


@router.get("/reports/{finding_id}/files/{name:path}")
def download(db: SessionDep, user: CurrentUser, finding_id: int, name: str) -> FileResponse:
    """One file of the finding's report folder, as an attachment (audited as a download)."""
    with db() as session:
        finding, study = access.require_finding(session, user, finding_id)
        if name not in report_files(finding.report_dir):
            raise NotFound(f"finding {finding_id}: no report file {name!r}", field="name")
        audit(session, user, "download", f"finding:{finding_id}/files/{name}", patient_id=study.patient_id)
    path = Path(finding.report_dir, name)
    if not path.is_file():
        raise NotFound(f"finding {finding_id}: its {name} is missing", field="name")
    return FileResponse(path, filename=Path(name).name, content_disposition_type="attachment")
