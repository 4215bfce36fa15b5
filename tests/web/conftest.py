"""Web fixtures: one migrated database with sample data, one synthetic case zip, signed-in clients,
the app served on a loopback port and a page of Debian's chromium.

The network is replaced by the `oracle` fixture of tests/conftest.py (the case's reference labels),
so these tests check the web app around diagnosis, not a model's quality.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn

from neurotriage.clinical import db, sample
from neurotriage.imaging.naming import BRATS2020
from neurotriage.imaging.synth import generate_case, write_case
from neurotriage.web.app import create_app
from neurotriage.web.auth import add_user
from neurotriage.web.settings import WebSettings

from .helpers import PASSWORD, make_client, sign_in

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--enable-unsafe-swiftshader", "--use-angle=swiftshader",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def live_server(settings: WebSettings) -> Iterator[str]:
    """The app served by uvicorn on a free loopback port, in this process (a patched model applies)."""
    port = free_port()
    app = create_app(settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


@contextmanager
def chromium_page():
    """A page of Debian's chromium (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        reason = f"{CHROMIUM} missing: apt-get install chromium (see .ci/run)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)  # CI installs it: a missing browser there is a broken set-up
        pytest.skip(reason)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(30_000)
        yield page
        browser.close()


@pytest.fixture
def server(web_settings, oracle) -> Iterator[str]:
    """The app on a loopback port, with the oracle as its model."""
    with live_server(web_settings) as url:
        yield url


@pytest.fixture
def browser_page(server):
    """A chromium page for a test of the served app."""
    with chromium_page() as page:
        yield page
