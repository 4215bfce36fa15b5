"""`python tests/diagnosis/report_gate_cli.py ARGS...`: the neurotriage CLI with the oracle model of
tests/conftest.py in place of the network, and a gate in the report stage.

With NEUROTRIAGE_TEST_REPORT_GATE set to a folder, a diagnosis that reaches its report stage writes
`<pid>.reporting` there and waits until a file named `open` appears, so a test can act while the
process is surely in that stage.
"""

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import neurotriage.diagnosis.record  # noqa: E402
import neurotriage.segmentation.infer  # noqa: E402
from conftest import OracleConfig, OracleModel  # noqa: E402  (tests/conftest.py)
from neurotriage.cli import main  # noqa: E402

GATE_ENV = "NEUROTRIAGE_TEST_REPORT_GATE"
GATE_WAIT_S = 300  # a test that never opens the gate fails on its own timeout first
ORACLE = OracleModel(Path(__file__), OracleConfig(), "0" * 64)
build_report = neurotriage.diagnosis.record.build_report


def gated_build_report(*args, **kwargs):
    """Announce the report stage, wait for the gate to open, then render the report."""
    gate = Path(os.environ[GATE_ENV])
    (gate / f"{os.getpid()}.reporting").touch()
    deadline = time.monotonic() + GATE_WAIT_S
    while not (gate / "open").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return build_report(*args, **kwargs)


if __name__ == "__main__":
    neurotriage.segmentation.infer.load_model = lambda _path=None: ORACLE
    if os.environ.get(GATE_ENV):
        neurotriage.diagnosis.record.build_report = gated_build_report
    raise SystemExit(main())
