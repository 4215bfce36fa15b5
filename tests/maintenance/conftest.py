"""Erasure and retention fixtures: the clinical database fixtures (SQLite and PostgreSQL), and a
NEUROTRIAGE_HOME of each test's own."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from neurotriage.clinical import db

from ..clinical.conftest import cli, db_factory, db_url, fresh_url, migrated_url, postgres_url  # noqa: F401


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
