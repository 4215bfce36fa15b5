"""Maintenance fixtures (backup, erasure, retention): the clinical database fixtures on SQLite and
PostgreSQL, and an installation or NEUROTRIAGE_HOME of each test's own."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from neurotriage.clinical import db

from ..clinical.conftest import cli, db_factory, db_url, fresh_url, migrated_url, postgres_url  # noqa: F401
from .helpers import Installation


@pytest.fixture
def install(fresh_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Installation:  # noqa: F811
    """A migrated database with the knowledge base, and an empty NEUROTRIAGE_HOME, both configured."""
    home = tmp_path / "home"
    monkeypatch.setenv("NEUROTRIAGE_HOME", str(home))
    db.migrate_and_load(fresh_url, create=True)
    return Installation(fresh_url, home)


@pytest.fixture
def sqlite_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Installation:
    """A migrated SQLite database outside an empty NEUROTRIAGE_HOME, both configured."""
    url = f"sqlite:///{tmp_path / 'nt.db'}"
    monkeypatch.setenv("NEUROTRIAGE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NEUROTRIAGE_DATABASE_URL", url)
    db.migrate_and_load(url, create=True)
    return Installation(url, tmp_path / "home")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty NEUROTRIAGE_HOME (the web app's data folder is its web/)."""
    folder = tmp_path / "home"
    monkeypatch.setenv("NEUROTRIAGE_HOME", str(folder))
    return folder


@pytest.fixture
def url(db_url: str, home: Path) -> str:  # noqa: F811
    """The backend's database with no patients, users or audit events, made the configured one."""
    with db.connection(db_url) as conn:
        conn.execute(text("DELETE FROM audit_events"))
        conn.execute(text("DELETE FROM users"))
    return db_url
