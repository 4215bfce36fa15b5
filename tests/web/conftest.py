"""Web fixtures: one migrated database with sample data, one synthetic case zip, signed-in clients.

The network is replaced by the `oracle` fixture of tests/conftest.py (the case's reference labels),
so these tests check the web app around diagnosis, not a model's quality.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from neurotriage.clinical import db, sample
from neurotriage.imaging.naming import BRATS2020
from neurotriage.imaging.synth import generate_case, write_case
from neurotriage.web.auth import add_user
from neurotriage.web.settings import WebSettings

from .helpers import PASSWORD, make_client, sign_in


def fresh_web_settings(root: Path) -> WebSettings:
    """Settings of a new app under `root`: a fresh SQLite database (schema, knowledge base, sample
    hospitals) and three users: `clin`, the signed-in user of most tests, is an admin so that it sees every
    patient the tests create; `doc` is a clinician for tests of what non-admins may not do."""
    url = f"sqlite:///{root / 'web.db'}"
    db.migrate_and_load(url, create=True)
    with db.transaction(url) as session:
        sample.seed_sample(session, n_patients=2)
        add_user(session, "clin", PASSWORD, "admin")
        add_user(session, "boss", PASSWORD, "admin")
        add_user(session, "doc", PASSWORD, "clinician")
    return WebSettings(
        secret_key="test-secret",
        secure_cookies=True,
        max_upload_bytes=1 << 30,
        job_workers=2,
        data_dir=root / "data",
        database_url=url,
    )


@pytest.fixture(scope="session")
def web_settings(tmp_path_factory: pytest.TempPathFactory) -> WebSettings:
    """The app's settings shared by the web tests."""
    return fresh_web_settings(tmp_path_factory.mktemp("web"))


@pytest.fixture
def own_web_settings(tmp_path: Path) -> WebSettings:
    """Settings with a database of this test's own, for tests that leave jobs queued."""
    return fresh_web_settings(tmp_path)


@pytest.fixture(scope="session")
def case_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A full-size synthetic right frontal enhancing tumour, zipped as one case folder."""
    root = tmp_path_factory.mktemp("case")
    folder = write_case(generate_case(11, "SYN_RF", kind="enhancing", lobe="frontal_lobe", hemisphere="right"),
                        root, BRATS2020)  # fmt: skip
    path = root / "SYN_RF.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for file in sorted(folder.iterdir()):
            archive.write(file, f"{folder.name}/{file.name}")
    return path


@pytest.fixture
def client(web_settings: WebSettings):
    """A signed-in client of `clin` (an admin: it sees every patient)."""
    with make_client(web_settings) as c:
        assert sign_in(c).status_code == 200
        yield c
