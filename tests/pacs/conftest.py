"""DICOM node fixtures: listeners on free loopback ports, a DICOM sender, and a throwaway Orthanc server."""

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

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import MRImageStorage

from neurotriage.pacs.inbox import Inbox, StudyState, read_state
from neurotriage.pacs.listener import Listener, ListenerConfig

from ..ingest.conftest import SYNTH_CASE, synth_dicom_root  # noqa: F401 (a fixture, shared)

LOOPBACK = "127.0.0.1"
SERIES = "3"  # a 33-instance series of the synthetic study: enough to test with, quick to send
ORTHANC_AET = "ORTHANC"
LISTENER_AET = "NEUROTRIAGE"
MODALITY = "neurotriage"  # the listener's name in Orthanc's DicomModalities


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

    def _start(root: Path = tmp_path / "inbox", stable_s: float = 1.0, allowed: tuple[str, ...] = ()) -> Running:
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
