"""After a sign-off, the final or amended results for the PACS that sent the study.

A review of a finding whose study the DICOM node received sends, when a destination is configured
(NEUROTRIAGE_DICOM_SEND_TO), a final SR and summary page when it confirms the finding and amended ones when it
overrides the location or the verdict, reflecting the finding's current state (pacs/signoff.py). What to send is
read in the review's own transaction (`sign_off_of`). Writing the objects, queueing them in the outbox and the
first try run on one background thread once the review is committed (`ResultsSender`), in the order the reviews
were made, so a slow or unreachable PACS never holds up a review: its item waits in the outbox, which the web app
retries every NEUROTRIAGE_DICOM_SEND_RETRY_S seconds while a destination is configured (as `neurotriage listen`
does; a lock per item keeps the two from sending one item twice), and `neurotriage send --pending` on demand.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from sqlalchemy.orm import Session

from neurotriage.clinical.models import Finding, Review, Study
from neurotriage.config import load_settings
from neurotriage.pacs.send import describe, read_item, resolve_destination, retry_until_stopped
from neurotriage.pacs.signoff import SignOff, has_dicom_results, received_by_node, send_sign_off
from neurotriage.web.review_state import current_crosscheck, finding_state

log = logging.getLogger(__name__)


def sign_off_of(session: Session, finding_id: int, review: Review) -> SignOff | None:
    """What the review (just stored) sends to the PACS; None unless a destination is configured, the finding's
    study came from the DICOM node and its report holds the preliminary results."""
    finding = session.get(Finding, finding_id)
    case_dir = _case_dir(finding)
    received = received_by_node(session.get(Study, finding.study_id).case_ref)
    if not (load_settings().dicom_send_to and received and case_dir and finding.report_dir):
        return None
    if not has_dicom_results(Path(finding.report_dir), case_dir):
        return None
    state = finding_state(session, finding)
    return SignOff(
        review_id=review.id,
        report_dir=Path(finding.report_dir),
        case_dir=case_dir,
        location=state.location,
        crosscheck=current_crosscheck(state),
        clinician=f"{state.reviewer}^",  # a DICOM person name: the username as the family name
        amendment=_amendment(review),
    )


def _case_dir(finding: Finding) -> Path | None:
    """The case folder the finding was segmented from (ingest's, for a study that came as DICOM)."""
    inputs = (finding.provenance or {}).get("inputs") or []
    return Path(inputs[0]["path"]).parent if inputs else None


def _amendment(review: Review) -> str | None:
    """What the review changed, in words; None when it confirms."""
    changed = []
    if review.location_decision == "override":
        changed.append(f"location {review.location_override}")
    if review.verdict_decision == "override":
        changed.append(f"symptom cross-check {review.verdict_override}")
    return "; ".join(changed) or None


class ResultsSender:
    """One background thread that sends sign-offs' results in the order they were made, and once started with a
    destination configured, one that retries what waits in the outbox."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pacs-results")
        self._stop = threading.Event()
        self._retrier: threading.Thread | None = None

    def start(self) -> None:
        """Start retrying the outbox when a destination is configured (NEUROTRIAGE_DICOM_SEND_TO)."""
        if load_settings().dicom_send_to:
            self._retrier = threading.Thread(
                target=retry_until_stopped, args=(self._stop,), daemon=True, name="pacs-results-retry"
            )
            self._retrier.start()

    def submit(self, sign_off: SignOff | None) -> Future | None:
        """Send the sign-off's results in the background; nothing for None."""
        return None if sign_off is None else self._pool.submit(_send, sign_off)

    def shutdown(self) -> None:
        """Wait for the results still being written or tried, then stop retrying."""
        self._pool.shutdown(wait=True)
        self._stop.set()
        if self._retrier is not None:
            self._retrier.join()


def _send(sign_off: SignOff) -> Path | None:
    """Write, queue and try the sign-off's results; returns the outbox item (None without a destination)."""
    try:
        destination = resolve_destination(None)
        if destination is None:
            return None
        item = send_sign_off(sign_off, destination)
    except Exception:
        log.exception("review %d: its results for the PACS were not queued", sign_off.review_id)
        raise
    log.info("review %d: %s", sign_off.review_id, describe(read_item(item)))
    return item
