"""Pull instead of push: retrieve one study from a PACS by DICOM C-GET into NEUROTRIAGE_HOME/dicom/pulled/.

C-GET brings the instances back over the association that asked for them, so the PACS needs no route to
this machine; it must know this AE title as a modality allowed to retrieve (Orthanc: an entry in
DicomModalities, or DicomAlwaysAllowGet). The instances are filed as the listener files them
(`Inbox.store`: atomic, fsync'd, duplicates kept once).
"""

from __future__ import annotations

import warnings
from pathlib import Path

from pydicom.dataset import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import (
    EnhancedMRImageStorage,
    MRImageStorage,
    StudyRootQueryRetrieveInformationModelGet,
)

from neurotriage.config import load_settings
from neurotriage.errors import UserError
from neurotriage.pacs.inbox import Inbox, checked_uid
from neurotriage.pacs.listener import STATUS_SUCCESS
from neurotriage.pacs.send import Destination

RETRIEVED_CLASSES = (MRImageStorage, EnhancedMRImageStorage)
PENDING = (0xFF00, 0xFF01)


def pulled_root() -> Path:
    """Where pulled studies are filed, one folder per StudyInstanceUID."""
    return load_settings().home / "dicom" / "pulled"


def pull_study(source: Destination, study_uid: str, calling_ae: str = "NEUROTRIAGE") -> Path:
    """Retrieve the MR instances of one study from `source` by C-GET; returns the study's folder."""
    study_uid = _study_uid(study_uid)
    inbox = Inbox(pulled_root(), stable_s=0)
    ae = AE(ae_title=calling_ae)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    for sop_class in RETRIEVED_CLASSES:
        ae.add_requested_context(sop_class)
    roles = [build_role(sop_class, scp_role=True) for sop_class in RETRIEVED_CLASSES]

    def store(event: evt.Event) -> int:
        inbox.store(event.dataset, event.encoded_dataset(), str(source.ae_title))
        return STATUS_SUCCESS

    assoc = ae.associate(
        source.host, source.port, ae_title=source.ae_title, ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, store)]
    )
    if not assoc.is_established:
        raise UserError(f"{source}: no association (is it running, and does it know {calling_ae}?)", field="from_pacs")
    try:
        final = _retrieve(assoc, study_uid)
    finally:
        assoc.release()
    folder = inbox.study_dir(study_uid)
    if final != STATUS_SUCCESS or not folder.is_dir():
        raise UserError(f"{source}: C-GET of study {study_uid} ended with status 0x{final:04X}", field="from_pacs")
    inbox.flush()
    return folder


def _study_uid(value: str) -> str:
    try:
        with warnings.catch_warnings():  # pydicom warns about the invalid value it is asked to check
            warnings.simplefilter("ignore", UserWarning)
            return checked_uid(value, "StudyInstanceUID")
    except ValueError as exc:
        raise UserError(f"{value!r}: {exc}", field="study") from None


def _retrieve(assoc, study_uid: str) -> int:
    """Send the C-GET request and follow its responses; the final status (0xFFFF when none came)."""
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = study_uid
    final = 0xFFFF
    for status, _identifier in assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet):
        if status and status.Status not in PENDING:
            final = int(status.Status)
    return final
