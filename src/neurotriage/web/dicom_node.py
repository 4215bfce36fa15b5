"""What the DICOM-node page shows: the studies the listener received, their states, and the results outbox.

Everything is read from the files the listener and the sender keep under NEUROTRIAGE_HOME (the inbox's
`study.json` per study, the outbox's `state.json` per item), plus the clinical study each received study was
filed as, found by its inbox folder. Server paths stay out of what is returned.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from neurotriage.clinical.models import Finding, Study
from neurotriage.config import load_settings
from neurotriage.pacs.inbox import STATES, StudyState, inbox_root, read_events, read_state
from neurotriage.pacs.send import DestinationStatus, outbox_status

log = logging.getLogger(__name__)
LISTEN_COMMAND = "neurotriage listen"


def received_studies(root: Path) -> list[StudyState]:
    """The state of every study folder under the inbox `root`, newest arrival first; a folder whose state
    cannot be read is left out with a warning (one bad file must not hide the others)."""
    states = []
    for study_dir in sorted(p for p in root.glob("*") if p.is_dir() and not p.name.startswith(".")):
        try:
            state = read_state(study_dir)
        except (ValueError, TypeError) as exc:
            log.warning("inbox study %s: unreadable state (%s); not shown", study_dir.name, exc)
            continue
        if state is not None:
            states.append(state)
    return sorted(states, key=lambda s: s.last_arrival or s.first_arrival or "", reverse=True)


def filed_as(session: Session, study_dirs: list[Path]) -> dict[str, dict[str, int | None]]:
    """The clinical patient and newest finding of each received study filed in the database, keyed by its
    folder's name (the StudyInstanceUID)."""
    if not study_dirs:
        return {}
    newest = select(Finding.study_id, func.max(Finding.id).label("finding_id")).group_by(Finding.study_id).subquery()
    rows = session.execute(
        select(Study.case_ref, Study.patient_id, newest.c.finding_id)
        .outerjoin(newest, newest.c.study_id == Study.id)
        .where(Study.case_ref.in_([str(d) for d in study_dirs]))
        .order_by(Study.id)
    )
    return {Path(ref).name: {"patient_id": patient, "finding_id": finding} for ref, patient, finding in rows}


def study_row(state: StudyState, links: dict[str, int | None]) -> dict[str, Any]:
    """One received study as the page and the API show it."""
    return {
        "study_uid": state.study_uid,
        "state": state.state,
        "patient_id": state.patient.get("PatientID", ""),
        "patient_name": state.patient.get("PatientName", ""),
        "other_patient_ids": state.patient_ids[1:],
        "instances": state.instances,
        "series": len(state.series),
        "calling_aes": state.calling_aes,
        "first_arrival": state.first_arrival,
        "last_arrival": state.last_arrival,
        "error": state.error,
        "clinical_patient_id": links.get("patient_id"),
        "finding_id": links.get("finding_id"),
    }


def destination_row(status: DestinationStatus) -> dict[str, Any]:
    """One destination's outbox, its items named by their folder's name rather than their path."""
    items = [item.model_dump() | {"item": Path(item.item).name} for item in status.items]
    return status.model_dump() | {"items": items}


def listener_settings() -> dict[str, Any]:
    """The configured DICOM settings the listener and the sender use."""
    settings = load_settings()
    return {
        "command": LISTEN_COMMAND,
        "allowed_aes": list(settings.dicom_allowed_aes),
        "send_to": settings.dicom_send_to,
        "stable_s": settings.dicom_stable_s,
    }


def node_view(session: Session) -> dict[str, Any]:
    """Everything the DICOM-node page shows: settings, received studies with a count per state, destinations, events."""
    root = inbox_root()
    states = received_studies(root)
    links = filed_as(session, [root / s.study_uid for s in states])
    counts = {name: sum(s.state == name for s in states) for name in STATES}
    return {
        "listener": listener_settings(),
        "counts": counts,
        "studies": [study_row(s, links.get(s.study_uid, {})) for s in states],
        "destinations": [destination_row(d) for d in outbox_status().destinations],
        "events": read_events(),
    }
