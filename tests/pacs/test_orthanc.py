"""A real PACS in the loop: a series C-STOREd into Orthanc is forwarded, once stable, to the listener."""

from __future__ import annotations

import pydicom

from .conftest import ORTHANC_AET, send, wait_until


def test_orthanc_forwards_a_stable_study_to_the_listener(start_listener, start_orthanc, series_files):
    running = start_listener()
    orthanc = start_orthanc(running.port)
    assert send(orthanc.dicom_port, series_files, called=ORTHANC_AET) == [0] * len(series_files)
    assert len(orthanc.get("/instances")) == len(series_files)

    wait_until(lambda: running.completed, timeout=60, what="Orthanc's forward to complete in the listener")
    study_dir, state = running.completed[0]
    assert study_dir.name == pydicom.dcmread(series_files[0], stop_before_pixels=True).StudyInstanceUID
    assert (state.instances, state.calling_aes) == (len(series_files), [ORTHANC_AET])
    assert len(list(study_dir.glob("*/*.dcm"))) == len(series_files)
