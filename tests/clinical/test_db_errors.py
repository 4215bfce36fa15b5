"""A database that cannot be reached: one line, exit 2 (no server or file needed)."""

from __future__ import annotations

import pytest


def test_missing_sqlite_file_is_one_line_error(tmp_path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEUROTRIAGE_DATABASE_URL", f"sqlite:///{tmp_path / 'absent.db'}")
    result = cli("patient", "list")
    assert result.code == 2
    assert result.err.startswith("neurotriage: error: database file") and result.err.count("\n") == 1
    assert not (tmp_path / "absent.db").exists()


def test_unreachable_postgres_is_one_line_error(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    # Port 1 on localhost refuses connections at once; the password must not be printed.
    monkeypatch.setenv("NEUROTRIAGE_DATABASE_URL", "postgresql+psycopg://someone:secret@127.0.0.1:1/nowhere")
    result = cli("patient", "list")
    assert result.code == 2
    assert "cannot reach database postgresql+psycopg://someone:***@127.0.0.1:1/nowhere" in result.err
    assert "secret" not in result.err and result.err.count("\n") == 1


def test_unusable_url_is_one_line_error(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEUROTRIAGE_DATABASE_URL", "nosuchdb://x/y")
    result = cli("db", "init")
    assert result.code == 2 and "is not usable" in result.err and result.err.count("\n") == 1


def test_default_database_lives_in_neurotriage_home(tmp_path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEUROTRIAGE_DATABASE_URL", raising=False)
    monkeypatch.setenv("NEUROTRIAGE_HOME", str(tmp_path / "home"))
    assert cli("db", "init").code == 0
    assert (tmp_path / "home" / "neurotriage.db").is_file()
    assert cli("patient", "list").out.strip() == "no patients"
