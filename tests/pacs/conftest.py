"""DICOM node fixtures: listeners on free loopback ports, a DICOM sender, a throwaway Orthanc server, and a finding
on the synthetic study's T1ce series for the results sent back."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from pynetdicom import AE
from pynetdicom.sop_class import MRImageStorage

from neurotriage.imaging.labels import EDEMA, ENHANCING, NECROTIC_CORE
from neurotriage.imaging.sri24 import BRATS_AFFINE
from neurotriage.ingest.dicom import scan_dicom_folder
from neurotriage.ingest.dicom_volume import load_dicom_volume
from neurotriage.ingest.native import NativeSegmentation
from neurotriage.pacs.inbox import Inbox, StudyState, read_state
from neurotriage.pacs.listener import Listener, ListenerConfig
from neurotriage.report.inputs import ReportInput

from ..ingest.conftest import SYNTH_CASE, synth_dicom_root  # noqa: F401 (a fixture, shared)

LOOPBACK = "127.0.0.1"
SERIES = "3"  # a 33-instance series of the synthetic study: enough to test with, quick to send
ORTHANC_AET = "ORTHANC"
LISTENER_AET = "NEUROTRIAGE"
# The listener's quiet period in tests: longer than a sender on this loaded machine (two test processes on two
# cores) may pause between instances, so that no study completes mid-transfer.
QUIET_S = 3.0
MODALITY = "neurotriage"  # the listener's name in Orthanc's DicomModalities
T1CE_SERIES = "7"  # seed 1's sagittal 3D T1 after gadolinium
VOLUMES = {"whole_tumour": 50.433, "tumour_core": 14.833, "enhancing": 9.891, "necrosis": 4.942, "edema": 35.6}
LOCATE = {
    "hemisphere": "right",
    "primary_region": "temporal_lobe",
    "primary_region_side": "right",
    "regions": [{"name": "temporal_lobe", "side": "right", "ml": 50.433, "fraction_of_tumour": 1.0}],
    "crosses_midline": False,
    "volumes_ml": VOLUMES,
    "summary": "Right temporal lobe, 50.4 ml whole tumour, does not cross the midline",
}
CROSSCHECK = {"verdict": "discordant", "needs_review": True, "summary": "Imaging: right temporal lobe. Symptoms: none."}


def required_tool(name: str) -> str:
    """The path of an external program; skips the test without it (fails under CI=true)."""
    path = shutil.which(name)
    if path is None:
        reason = f"{name} is not installed (apt-get install -y {name.lower()})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)
    return path


def wait_until(predicate: Callable[[], object], timeout: float = 20.0, what: str = "condition") -> None:
    """Poll `predicate` until it is true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


def free_port() -> int:
    """A loopback port free right now."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def send(port: int, files: Sequence[Path], calling: str = "SCANNER", called: str = LISTENER_AET) -> list[int]:
    """C-STORE `files` in one association; the status of each."""
    ae = AE(ae_title=calling)
    ae.add_requested_context(MRImageStorage)
    assoc = ae.associate(LOOPBACK, port, ae_title=called)
    assert assoc.is_established, f"association to {called} on port {port} not established"
    try:
        return [assoc.send_c_store(path).Status for path in files]
    finally:
        assoc.release()


@dataclass
class Running:
    """A listener started by `start_listener`, and the hand-offs it made."""

    listener: Listener
    completed: list[tuple[Path, StudyState]] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.listener.port

    def state(self, study_uid: str) -> StudyState | None:
        return read_state(self.listener.inbox.study_dir(study_uid))


@pytest.fixture
def start_listener(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    """Start listeners on free loopback ports, stopped after the test; all share one inbox by default."""
    started: list[Listener] = []

    def _start(root: Path = tmp_path / "inbox", stable_s: float = QUIET_S, allowed: tuple[str, ...] = ()) -> Running:
        config = ListenerConfig(LISTENER_AET, LOOPBACK, 0, allowed, check_s=0.1)
        running = Running(Listener(Inbox(root, stable_s), config))
        running.listener.on_complete = lambda study_dir, state: running.completed.append((study_dir, replace(state)))
        running.listener.start()
        started.append(running.listener)
        return running

    yield _start
    for listener in started:
        listener.stop()


@pytest.fixture(scope="session")
def series_files(synth_dicom_root: Path) -> list[Path]:  # noqa: F811
    """The instances of one series of the synthetic study."""
    return sorted((synth_dicom_root / SYNTH_CASE / "dicom" / SERIES).glob("*.dcm"))


@dataclass(frozen=True)
class Orthanc:
    """A running Orthanc: its REST API on `url`, its DICOM port."""

    url: str
    dicom_port: int

    def get(self, path: str) -> object:
        with urllib.request.urlopen(self.url + path, timeout=10) as answer:
            return json.load(answer)


# Lua's SendToModality sends instances only; the REST call sends a whole study.
ORTHANC_LUA = f"""
function OnStableStudy(studyId, tags, metadata)
  RestApiPost('/modalities/{MODALITY}/store', studyId)
end
"""


@pytest.fixture
def start_orthanc(tmp_path: Path) -> Iterator[Callable[[int], Orthanc]]:
    """Start Orthanc on free loopback ports with temporary storage, forwarding each stable study (StableAge 1)
    to a listener on the given port; stopped after the test. Orthanc 1.10 has no bind address: its HTTP
    answers loopback clients only (RemoteAccessAllowed false) and both ports live only for the test."""
    binary = required_tool("Orthanc")
    processes: list[subprocess.Popen] = []

    def _start(listener_port: int) -> Orthanc:
        folder = tmp_path / "orthanc"
        folder.mkdir()
        (folder / "forward.lua").write_text(ORTHANC_LUA)
        http_port, dicom_port = free_port(), free_port()
        config = {
            "Name": "neurotriage-test",
            "StorageDirectory": str(folder / "storage"),
            "IndexDirectory": str(folder / "storage"),
            "HttpPort": http_port,
            "DicomPort": dicom_port,
            "DicomAet": ORTHANC_AET,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "StableAge": 1,
            "Plugins": [],
            "LuaScripts": [str(folder / "forward.lua")],
            "DicomModalities": {MODALITY: [LISTENER_AET, LOOPBACK, listener_port]},
        }
        (folder / "orthanc.json").write_text(json.dumps(config))
        log = (folder / "orthanc.log").open("w")
        processes.append(subprocess.Popen([binary, str(folder / "orthanc.json")], stdout=log, stderr=log))
        orthanc = Orthanc(f"http://{LOOPBACK}:{http_port}", dicom_port)
        wait_until(lambda: _answers(orthanc, processes[-1], folder), timeout=30, what="Orthanc to start")
        return orthanc

    yield _start
    for process in processes:
        process.terminate()
        process.wait(timeout=30)


def _answers(orthanc: Orthanc, process: subprocess.Popen, folder: Path) -> bool:
    if process.poll() is not None:
        pytest.fail(f"Orthanc exited with {process.returncode}: {(folder / 'orthanc.log').read_text()[-2000:]}")
    try:
        orthanc.get("/system")
    except OSError:
        return False
    return True


@pytest.fixture(scope="module")
def report(synth_dicom_root: Path, tmp_path_factory: pytest.TempPathFactory) -> ReportInput:  # noqa: F811
    """A finding on a copy of the synthetic study's T1ce series, with a nested tumour near its centre."""
    series_folder = shutil.copytree(
        synth_dicom_root / SYNTH_CASE / "dicom" / T1CE_SERIES, tmp_path_factory.mktemp("case") / "t1ce_dicom"
    )
    (series,) = scan_dicom_folder(series_folder).series
    image = load_dicom_volume(series).image
    t1ce = sitk.GetArrayFromImage(image)  # (z, y, x)
    z, y, x = np.indices(t1ce.shape)
    distance = np.sqrt((z - t1ce.shape[0] / 2) ** 2 + (y - t1ce.shape[1] / 2) ** 2 + (x - t1ce.shape[2] / 2) ** 2)
    labels = np.zeros(t1ce.shape, np.uint8)
    labels[distance < 20], labels[distance < 12], labels[distance < 6] = EDEMA, ENHANCING, NECROTIC_CORE
    lps = np.eye(4)
    lps[:3, :3] = np.reshape(image.GetDirection(), (3, 3)) * image.GetSpacing()
    lps[:3, 3] = image.GetOrigin()
    native = NativeSegmentation(
        t1ce=t1ce.transpose(2, 1, 0),
        labels=labels.transpose(2, 1, 0),
        affine=np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps,
        dicom_folder=series_folder,
    )
    blank = np.zeros((8, 8, 8), np.float32)
    return ReportInput.model_validate(
        {
            "patient": {"id": 1},
            "locate": LOCATE,
            "crosscheck": CROSSCHECK,
            "imaging": {"case_id": "C1", "images": {"t1ce": blank}, "affine": BRATS_AFFINE, "native": native},
        }
    )
