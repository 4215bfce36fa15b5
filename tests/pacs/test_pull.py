"""Pull instead of push: a study retrieved from a real Orthanc by C-GET, and `diagnose --from-pacs` refusals."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from neurotriage.cli import main
from neurotriage.errors import UserError
from neurotriage.pacs.pull import pull_study, pulled_root
from neurotriage.pacs.send import Destination

from .conftest import LISTENER_AET, LOOPBACK, ORTHANC_AET, free_port, send


def test_a_study_is_retrieved_from_orthanc(start_orthanc, series_files, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("NEUROTRIAGE_HOME", str(tmp_path / "home"))
    orthanc = start_orthanc(free_port())  # nothing listens there: C-GET needs no route back
    assert set(send(orthanc.dicom_port, series_files, called=ORTHANC_AET)) == {0}
    study_uid = pydicom.dcmread(series_files[0], stop_before_pixels=True).StudyInstanceUID
    source = Destination(ORTHANC_AET, LOOPBACK, orthanc.dicom_port)
    folder = pull_study(source, study_uid, calling_ae=LISTENER_AET)
    assert folder == pulled_root() / study_uid
    got = sorted(p.name for p in folder.glob("*/*.dcm"))
    assert got == sorted(f"{pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID}.dcm" for p in series_files)
    with pytest.raises(UserError, match="C-GET of study 1.2.3.4 ended with status"):
        pull_study(source, "1.2.3.4", calling_ae=LISTENER_AET)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from-pacs", "PACS@127.0.0.1:104"], "--from-pacs: give it with --study UID"),
        (["--study", "1.2.3"], "--from-pacs: give it with --study UID"),
        (["--from-pacs", "no-port", "--study", "1.2.3"], "--from-pacs: 'no-port'"),
        (["--from-pacs", "PACS@127.0.0.1:1", "--study", "not a uid"], "--study: 'not a uid'"),
    ],
)
def test_diagnose_from_pacs_refusals(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["diagnose", *args, "--patient", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
