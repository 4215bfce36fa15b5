"""`python tests/diagnosis/oracle_cli.py ARGS...`: the neurotriage CLI with the oracle model of
tests/conftest.py in place of the network, for tests that diagnose in separate processes.

NEUROTRIAGE_TEST_HANG_S makes each model load wait that long first, so a test can kill a worker
while it is surely in the middle of a study.
"""

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import neurotriage.segmentation.infer  # noqa: E402
from conftest import OracleConfig, OracleModel  # noqa: E402  (tests/conftest.py)
from neurotriage.cli import main  # noqa: E402

ORACLE = OracleModel(Path(__file__), OracleConfig(), "0" * 64)


def load_oracle(_path=None) -> OracleModel:
    """The oracle, after the configured wait."""
    time.sleep(float(os.environ.get("NEUROTRIAGE_TEST_HANG_S", "0")))
    return ORACLE


neurotriage.segmentation.infer.load_model = load_oracle
raise SystemExit(main())
