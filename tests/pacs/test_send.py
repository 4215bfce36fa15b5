"""Sending results to a PACS through the outbox, against real storage SCPs on loopback: a pynetdicom AE in a
thread, and dcmtk's storescp when it is installed. Objects arrive byte for byte; a destination that is down keeps
them queued with the error and doubling waits, and gets them once when it comes up; a refusal fails for good."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import socket
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt

from neurotriage.cli import main
from neurotriage.errors import UserError
from neurotriage.imaging.synth_dicom import study_identity, write_dicom_series
from neurotriage.imaging.synth_series import plan_study
from neurotriage.ingest.dicom import scan_dicom_folder
from neurotriage.ingest.dicom_seg import write_dicom_seg
from neurotriage.ingest.dicom_volume import load_dicom_volume
from neurotriage.pacs.commands import send_report
from neurotriage.pacs.send import (
    outbox_status,
    parse_destination,
    queue_results,
    read_item,
    send_pending,
)

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
PACS_AE = "TESTPACS"


@pytest.fixture(autouse=True)
def _own_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test its own outbox, default back-off."""
    monkeypatch.setenv("NEUROTRIAGE_HOME", str(tmp_path / "home"))
    for name in ("NEUROTRIAGE_DICOM_SEND_TO", "NEUROTRIAGE_DICOM_SEND_RETRY_S", "NEUROTRIAGE_DICOM_SEND_RETRY_MAX_S"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Four small MR slices and a DICOM SEG of them written by the ingest writer: the SEG first."""
    out = tmp_path_factory.mktemp("study")
    rng = np.random.default_rng(1)
    identity = study_identity(rng)
    plan = dataclasses.replace(next(p for p in plan_study(rng) if p.sequence == "t1ce"), shape=(8, 8, 4))
    image = np.arange(256, dtype=np.int16).reshape(8, 8, 4)
    write_dicom_series(plan, plan.affine(np.zeros(3)), image, identity, "120000", out / "mr")
    (series,) = scan_dicom_folder(out / "mr").series
    labels = np.zeros((4, 8, 8), np.uint8)
    labels[1:3, 2:5, 2:5] = 2
    seg = write_dicom_seg(labels, load_dicom_volume(series), out / "seg.dcm")
    return [seg, *sorted((out / "mr").glob("*.dcm"))]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class StoreSCP:
    """A pynetdicom storage SCP on a loopback port that keeps the raw dataset bytes of every C-STORE."""

    def __init__(self, port: int, status: int = 0x0000) -> None:
        self.port, self.status = port, status
        self.received: list[bytes] = []
        ae = AE(ae_title=PACS_AE)
        for context in AllStoragePresentationContexts:
            ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
        handlers = [(evt.EVT_C_STORE, self._store)]
        self.server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=handlers)

    def _store(self, event: evt.Event) -> int:
        self.received.append(event.request.DataSet.getvalue())
        return self.status

    @property
    def destination(self):
        return parse_destination(f"{PACS_AE}@127.0.0.1:{self.port}")


@pytest.fixture
def scp():
    servers: list[StoreSCP] = []

    def start(port: int | None = None, status: int = 0x0000) -> StoreSCP:
        servers.append(StoreSCP(port or free_port(), status))
        return servers[-1]

    yield start
    for server in servers:
        server.server.shutdown()


def dataset_bytes(path: Path) -> bytes:
    """The file's data set as stored: everything after the preamble, DICM and the file meta group."""
    meta = pydicom.filereader.read_file_meta_info(path)
    return path.read_bytes()[132 + 12 + meta.FileMetaInformationGroupLength :]


def test_a_seg_and_mr_images_arrive_byte_for_byte_and_the_outbox_copies_go(study: list[Path], scp) -> None:
    pacs = scp()
    item = queue_results(study, pacs.destination)
    summary = send_pending()
    assert (summary.sent, summary.retrying, summary.failed) == (1, 0, 0)
    assert sorted(pacs.received) == sorted(dataset_bytes(path) for path in study)
    assert pydicom.dcmread(study[0]).SOPClassUID.name == "Segmentation Storage"
    assert all(path.is_file() for path in study)  # the sources stay
    assert sorted(p.name for p in item.iterdir()) == [".lock", "state.json"]
    state = read_item(item)
    assert (state.state, state.attempts, state.last_error, state.delivered) == ("sent", 1, None, state.files)
    (dest,) = outbox_status().destinations
    assert (dest.destination, dest.queued, dest.sent, dest.failed, dest.items) == (str(pacs.destination), 0, 1, 0, [])
    assert send_pending().items == []  # nothing is sent twice


def test_a_destination_that_is_down_keeps_the_item_queued_then_gets_it_once(study: list[Path], scp) -> None:
    port = free_port()
    item = queue_results(study[:2], parse_destination(f"{PACS_AE}@127.0.0.1:{port}"), now=T0)
    assert send_pending(now=T0).retrying == 1
    state = read_item(item)
    assert (state.state, state.attempts, state.next_attempt) == ("queued", 1, T0 + timedelta(seconds=30))
    assert state.last_error == f"cannot connect to 127.0.0.1:{port}"
    assert send_pending(now=T0 + timedelta(seconds=29)).items == []  # not due yet
    send_pending(now=T0 + timedelta(seconds=30))
    assert read_item(item).next_attempt == T0 + timedelta(seconds=90)  # the wait doubles
    (dest,) = outbox_status().destinations
    assert (dest.queued, dest.sent, [view.last_error for view in dest.items]) == (1, 0, [state.last_error])
    assert len(list(item.glob("*.dcm"))) == 2  # still holds its copies

    pacs = scp(port)
    summary = send_pending(now=T0 + timedelta(seconds=90))
    assert (summary.sent, summary.retrying) == (1, 0)
    assert sorted(pacs.received) == sorted(dataset_bytes(path) for path in study[:2])
    assert send_pending(now=T0 + timedelta(days=1)).items == []
    assert len(pacs.received) == 2
    assert read_item(item).attempts == 3


def test_the_back_off_stops_at_its_cap(study: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEUROTRIAGE_DICOM_SEND_RETRY_S", "100")
    monkeypatch.setenv("NEUROTRIAGE_DICOM_SEND_RETRY_MAX_S", "150")
    item = queue_results(study[:1], parse_destination(f"{PACS_AE}@127.0.0.1:{free_port()}"), now=T0)
    now = T0
    for wait in (100, 150, 150):
        send_pending(now=now)
        assert read_item(item).next_attempt == now + timedelta(seconds=wait)
        now += timedelta(seconds=wait)


def test_a_refusing_destination_fails_the_item_for_good_with_the_status(study: list[Path], scp) -> None:
    pacs = scp(status=0xA700)
    item = queue_results(study[:1], pacs.destination)
    assert send_pending().failed == 1
    state = read_item(item)
    assert (state.state, state.next_attempt, state.attempts) == ("failed", None, 1)
    assert state.last_error == "001-seg.dcm: refused with status 0xA700 (Refused: Out of Resources)"
    assert send_pending(now=datetime.now(UTC) + timedelta(days=1)).items == []
    assert len(pacs.received) == 1
    (dest,) = outbox_status().destinations
    assert (dest.failed, dest.items[0].last_error) == (1, state.last_error)


def test_the_send_command_sends_queues_and_shows_the_outbox(study: list[Path], scp, capsys) -> None:
    pacs = scp()
    assert main(["send", "--to", str(pacs.destination), str(study[0]), str(study[1].parent)]) == 0
    assert capsys.readouterr().out == f"sent 5 objects to {PACS_AE}\n"
    assert len(pacs.received) == 5

    down = f"DOWN@127.0.0.1:{free_port()}"
    assert main(["send", "--to", down, str(study[0])]) == 1
    assert capsys.readouterr().out.startswith("queued: cannot connect to 127.0.0.1:")
    assert main(["send", "--pending"]) == 0
    assert capsys.readouterr().out == "0 sent, 0 still queued, 0 failed.\n"  # nothing due yet
    assert main(["send", "--status", "--json"]) == 0
    counts = {d["destination"]: (d["queued"], d["sent"]) for d in json.loads(capsys.readouterr().out)["destinations"]}
    assert counts == {str(pacs.destination): (0, 1), down: (1, 0)}


@pytest.mark.parametrize(
    "value",
    ["PACS@localhost", "PACS", "@localhost:104", "A_TITLE_TOO_LONG_X@h:104", "PACS@h:0", "PACS@h:port", "PACS@:104"],
)
def test_a_bad_destination_exits_2_with_one_line(value: str, study: list[Path], capsys) -> None:
    assert main(["send", "--to", value, str(study[0])]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"neurotriage: error: --to: {value!r}: ")
    with pytest.raises(UserError) as refused:
        parse_destination(value)
    assert refused.value.field == "send_to"


def test_diagnose_refuses_a_bad_send_to_before_any_work(tmp_path: Path, capsys) -> None:
    assert main(["diagnose", str(tmp_path / "no-such-study"), "--patient", "1", "--send-to", "PACS@h"]) == 2
    assert capsys.readouterr().err == "neurotriage: error: --send-to: 'PACS@h': give the destination as AET@host:port\n"


def test_a_bad_configured_destination_names_the_setting(monkeypatch: pytest.MonkeyPatch, study, capsys) -> None:
    monkeypatch.setenv("NEUROTRIAGE_DICOM_SEND_TO", "PACS@h:99999")
    assert main(["send", str(study[0])]) == 2
    assert capsys.readouterr().err.startswith("neurotriage: error: NEUROTRIAGE_DICOM_SEND_TO='PACS@h:99999': the port")


def test_files_that_are_not_dicom_are_refused_naming_them(tmp_path: Path, capsys) -> None:
    (tmp_path / "notes.txt").write_text("not DICOM")
    assert main(["send", "--to", "PACS@127.0.0.1:104", str(tmp_path / "notes.txt")]) == 2
    assert "notes.txt: not a DICOM file" in capsys.readouterr().err
    assert outbox_status().destinations == []


def test_dcmtk_storescp_receives_the_objects(study: list[Path], tmp_path: Path) -> None:
    if shutil.which("storescp") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("dcmtk's storescp is not installed (apt-get install dcmtk)")
        pytest.skip("dcmtk's storescp is not installed")
    port, received = free_port(), tmp_path / "received"
    received.mkdir()
    server = subprocess.Popen(["storescp", "-aet", "STORESCP", "-od", str(received), str(port)])
    try:
        _wait_listening(port)
        queue_results(study, parse_destination(f"STORESCP@127.0.0.1:{port}"))
        assert send_pending().sent == 1
    finally:
        server.terminate()
        server.wait(timeout=10)
    stored = {pydicom.dcmread(p).SOPInstanceUID for p in received.iterdir()}
    assert stored == {pydicom.dcmread(p).SOPInstanceUID for p in study}


def _wait_listening(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"storescp is not listening on port {port} after {timeout_s} s")


def test_a_reports_dicom_objects_are_its_native_dcm_files(study: list[Path], tmp_path: Path, scp, capsys) -> None:
    native = tmp_path / "report" / "native"
    native.mkdir(parents=True)
    shutil.copyfile(study[0], native / "seg.dcm")
    (native / "seg.nii.gz").write_bytes(b"not DICOM")
    pacs = scp()
    assert send_report(tmp_path / "report", pacs.destination) == 0
    assert capsys.readouterr().out == f"sent 1 objects to {PACS_AE}\n"
    assert pacs.received == [dataset_bytes(study[0])]
    assert send_report(tmp_path, pacs.destination) == 0  # no native/ folder: nothing to send
    assert capsys.readouterr().out == f"nothing sent to {PACS_AE}: the report has no DICOM objects\n"
