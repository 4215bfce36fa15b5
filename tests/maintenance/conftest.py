"""Backup fixtures: an installation (database and NEUROTRIAGE_HOME) of each test's own, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from neurotriage.clinical import db

from ..clinical.conftest import cli, db_factory, fresh_url, postgres_url  # noqa: F401
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
