"""`neurotriage listen` as a process: its start-up line, a line per association and per study, a clean stop
on SIGTERM; settings and flags refused in one line."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from neurotriage.cli import main
from neurotriage.config import load_settings
from neurotriage.errors import UserError

from .conftest import send, wait_until


def _follow(stream, lines: list[str]) -> None:
    for line in stream:
        lines.append(line)


def test_listen_logs_associations_and_studies_and_stops_on_sigterm(series_files, tmp_path):
    env = os.environ | {
        "NEUROTRIAGE_HOME": str(tmp_path / "home"),
        "NEUROTRIAGE_DATABASE_URL": f"sqlite:///{tmp_path / 'node.db'}",
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    subprocess.run([sys.executable, "-m", "neurotriage", "db", "init"], env=env, check=True, capture_output=True)
    command = [sys.executable, "-m", "neurotriage", "listen", "--port", "0", "--stable-seconds", "0.5"]
    command += ["--workers", "0"]  # receive and queue only: the 3 instances are no study to diagnose
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    threading.Thread(target=_follow, args=(process.stderr, lines), daemon=True).start()
    try:
        wait_until(lambda: any("DICOM listener" in line for line in lines), what="the start-up line")
        port = int(re.search(r"DICOM listener NEUROTRIAGE on 127\.0\.0\.1 port (\d+)", "".join(lines))[1])
        assert send(port, series_files[:3]) == [0, 0, 0]
        wait_until(lambda: any(" complete: 3 instances, patient " in line for line in lines), what="completion")
        wait_until(lambda: any("(a new, unconfirmed patient)" in line for line in lines), what="the hand-off")
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    text = "".join(lines)
    assert "accepting associations from any calling AE title" in text
    assert re.search(r"SCANNER@127\.0\.0\.1:\d+: association released, 3 instances stored, 0 duplicates", text)
    assert "Traceback" not in text
    assert len(list((tmp_path / "home" / "dicom" / "inbox").glob("*/*/*.dcm"))) == 3


def test_listen_refuses_to_start_without_a_database(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NEUROTRIAGE_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    assert main(["listen", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "db init" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--ae-title", "A" * 17], "not a DICOM AE title"),
        (["--allow-ae", "BAD\\AE"], "not a DICOM AE title"),
        (["--stable-seconds", "0"], "--stable-seconds: must be a positive number"),
    ],
)
def test_bad_listen_flags_are_one_line_errors(argv, message, capsys):
    assert main(["listen", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_dicom_settings_from_the_environment(tmp_path: Path):
    settings = load_settings({"NEUROTRIAGE_DICOM_STABLE_S": "5", "NEUROTRIAGE_DICOM_ALLOWED_AES": "PACS, MY SCANNER,"})
    assert (settings.dicom_stable_s, settings.dicom_allowed_aes) == (5, ("PACS", "MY SCANNER"))
    assert (load_settings({}).dicom_stable_s, load_settings({}).dicom_allowed_aes) == (30, ())
    with pytest.raises(UserError, match="NEUROTRIAGE_DICOM_ALLOWED_AES"):
        load_settings({"NEUROTRIAGE_DICOM_ALLOWED_AES": "WAY_TOO_LONG_AE_TITLE"})
