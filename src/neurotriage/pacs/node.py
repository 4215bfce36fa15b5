"""The DICOM node between the listener and the PACS: a complete study becomes a queued diagnosis of the
patient its PatientID names, and the diagnosis's DICOM objects go back to the destination.

The hand-off matches the patient by MRN (creating an unconfirmed patient when none matches), stores a
study whose case is the inbox folder, dated by its StudyDate, and puts it on the diagnosis queue in one
transaction, so the web app and `neurotriage worker` see it like any other. A worker thread of the
listener's own claims queued studies; after each, the received study's state says diagnosed (or failed with
its reason) and its report's DICOM objects (SEG, SR, summary page) are sent, or left in the outbox to be
retried.
"""

from __future__ import annotations

import logging
import threading
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import select

from neurotriage.clinical.db import transaction
from neurotriage.clinical.models import Study
from neurotriage.clinical.mrn import find_or_create_by_mrn
from neurotriage.diagnosis.batch import Progress, drain
from neurotriage.diagnosis.pipeline import DiagnoseOptions
from neurotriage.diagnosis.queue import QueueSettings, enqueue
from neurotriage.errors import UserError
from neurotriage.ingest.dicom import declared_study_date, dicom_date
from neurotriage.pacs.inbox import Inbox, StudyState
from neurotriage.pacs.listener import log_complete
from neurotriage.pacs.send import (
    Destination,
    describe,
    queue_results,
    read_item,
    report_objects,
    retry_until_stopped,
    send_pending,
)

log = logging.getLogger(__name__)


def _birth_date(value: str | None) -> date | None:
    """A DICOM DA (YYYYMMDD) as a date; None when absent or not a date (the record is then made without one)."""
    try:
        return dicom_date(value)
    except ValueError:
        return None


class Node:
    """Hands complete studies to the diagnosis queue and sends each finished diagnosis's objects back."""

    def __init__(self, inbox: Inbox, destination: Destination | None, options: DiagnoseOptions | None = None) -> None:
        self.inbox = inbox
        self.destination = destination
        self.options = options or DiagnoseOptions()

    def hand_off(self, study_dir: Path, state: StudyState) -> None:
        """The listener's `on_complete`: queue a diagnosis of the study for the patient its PatientID names."""
        log_complete(study_dir, state)
        tags = state.patient
        if not tags.get("PatientID"):
            raise UserError(f"study {state.study_uid}: no PatientID, so no patient to file it under", field="mrn")
        with transaction(self.options.url) as session:
            patient, created = find_or_create_by_mrn(
                session,
                mrn=tags["PatientID"],
                issuer=tags.get("IssuerOfPatientID") or None,
                name=tags.get("PatientName") or None,
                birth_date=_birth_date(tags.get("PatientBirthDate")),
                sex=None,
            )
            study = session.scalar(
                select(Study).where(Study.patient_id == patient.id, Study.case_ref == str(study_dir))
            ) or Study(patient_id=patient.id, case_ref=str(study_dir))
            study.study_date = declared_study_date(study_dir) or study.study_date
            session.add(study)
            session.flush()
            enqueue(session, study)
            ids = patient.id, study.id
        state.state = "queued"
        note = " (a new, unconfirmed patient)" if created else ""
        log.info("study %s queued as study %d of patient %d%s", state.study_uid, ids[1], ids[0], note)

    def finished(self, row: dict[str, Any]) -> None:
        """After a queued diagnosis: the received study's state, and its results sent (or kept to retry)."""
        study_dir = Path(row["case_ref"])
        if study_dir.parent != self.inbox.root:
            return  # a study that did not come through this node
        if not row["ok"]:
            # A failed attempt is queued again unless parked; either way the state shows why.
            final = row["status"] == "parked"
            self.inbox.set_state(study_dir.name, "failed" if final else "queued", row.get("error"))
            return
        self.inbox.set_state(study_dir.name, "diagnosed")
        if self.destination is not None:
            self._send(study_dir.name, Path(row["report_dir"]))

    def _send(self, study_uid: str, report_dir: Path) -> None:
        files = report_objects(report_dir)
        if not files:
            log.error("study %s: the report holds no DICOM objects; nothing sent", study_uid)
            return
        item = queue_results(files, self.destination)
        send_pending(items=[item])
        outcome = read_item(item)
        log.info("study %s: %s", study_uid, describe(outcome))
        if outcome.state == "sent":
            self.inbox.set_state(study_uid, "sent")

    def run_worker(self, stop: threading.Event, settings: QueueSettings | None = None, poll_s: float = 1.0) -> None:
        """Diagnose queued studies until `stop` is set, retrying unsent results meanwhile (`retry_until_stopped`)."""
        retrier = threading.Thread(target=retry_until_stopped, args=(stop,), daemon=True, name="dicom-send-retry")
        retrier.start()
        drain(
            self.options,
            settings or QueueSettings(),
            _NodeProgress(self),
            retry=True,
            until="stopped",
            stop=stop,
            poll_s=poll_s,
        )
        retrier.join()


class _NodeProgress(Progress):
    """A log line per diagnosis, and the node's follow-up when it ends."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def finished(self, row: dict[str, Any]) -> None:
        """Log the outcome, then update the received study and send its results."""
        outcome = f"finding {row.get('finding_id')}" if row["ok"] else f"{row['status']}: {row.get('error')}"
        log.info("study %s diagnosed in %.0f s: %s", row["study_id"], row["seconds"], outcome)
        self.node.finished(row)
