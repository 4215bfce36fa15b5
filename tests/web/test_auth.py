"""Sign-in, sessions, CSRF, the first admin and `neurotriage user add`."""

from __future__ import annotations

import argparse

import pytest
from sqlalchemy import func, select

from neurotriage import NOTICE
from neurotriage.clinical import db
from neurotriage.clinical.models import Patient
from neurotriage.errors import UserError
from neurotriage.web import commands
from neurotriage.web.auth import hash_password, verify_password
from neurotriage.web.models import AuditEvent, User
from neurotriage.web.settings import load_web_settings

from .helpers import PASSWORD, make_client, page_csrf, sign_in


def test_patient_pages_need_login(web_settings):
    with make_client(web_settings) as c:
        for path in ("/patients", "/patients/1", "/reports/1", "/jobs/1"):
            r = c.get(path, follow_redirects=False)
            assert (r.status_code, r.headers["location"]) == (303, "/login")
        assert c.get("/api/patients").status_code == 401
        login = c.get("/login")
        assert NOTICE in login.text


def test_wrong_password_is_refused_and_audited(web_settings):
    with make_client(web_settings) as c:
        r = sign_in(c, "clin", "not the password")
        assert r.status_code == 401 and "Wrong username or password" in r.text
        assert c.get("/patients", follow_redirects=False).status_code == 303
        assert sign_in(c, "nobody", PASSWORD).status_code == 401
    with db.transaction(web_settings.database_url) as session:
        failed = session.scalars(select(AuditEvent.target).where(AuditEvent.action == "login_failed")).all()
    assert {"user:clin", "user:nobody"} <= set(failed)


def test_session_cookie_is_secure_and_signed_in_pages_work(client):
    cookie = next(c for c in client.cookies.jar if c.name == "neurotriage_session")
    assert cookie.secure
    r = client.get("/patients")
    assert r.status_code == 200 and NOTICE in r.text
    assert "default-src 'self'" in r.headers["content-security-policy"]


def test_login_and_forms_need_the_sessions_csrf_token(web_settings, client):
    foreign = page_csrf(client)  # a real token, but of another session
    with make_client(web_settings) as other:
        other.get("/login")
        for token in ("", foreign):
            r = other.post("/login", data={"username": "clin", "password": PASSWORD, "csrf_token": token})
            assert r.status_code == 403 and "CSRF" in r.text
    with db.transaction(web_settings.database_url) as session:
        before = session.scalar(select(func.count(Patient.id)))
    assert client.post("/patients", data={"name": "Forged", "csrf_token": "guessed"}).status_code == 403
    assert client.post("/api/patients", json={"name": "Forged"}).status_code == 403
    assert client.post("/logout", data={}).status_code == 403
    with db.transaction(web_settings.database_url) as session:
        assert session.scalar(select(func.count(Patient.id))) == before
    token = page_csrf(client)
    r = client.post("/api/patients", json={"name": "Via API"}, headers={"X-CSRF-Token": token})
    assert r.status_code == 201 and r.json()["name"] == "Via API"


def test_logout_ends_the_session(client):
    assert client.post("/logout", data={"csrf_token": page_csrf(client)}, follow_redirects=False).status_code == 303
    assert client.get("/patients", follow_redirects=False).status_code == 303


def test_passwords_are_stored_hashed(web_settings):
    with db.transaction(web_settings.database_url) as session:
        stored = session.scalar(select(User.password_hash).where(User.username == "clin"))
    assert PASSWORD not in stored and stored.startswith("scrypt$")
    assert verify_password(PASSWORD, stored) and not verify_password("wrong", stored)
    assert hash_password(PASSWORD) != hash_password(PASSWORD)  # salted


def test_first_admin_comes_from_the_environment(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    db.migrate_and_load(url, create=True)
    monkeypatch.setenv("NEUROTRIAGE_ADMIN_USER", "root")
    monkeypatch.setenv("NEUROTRIAGE_ADMIN_PASSWORD", "first admin pw")
    with make_client(load_web_settings(database_url=url, data_dir=tmp_path / "data")) as c:
        assert sign_in(c, "root", "first admin pw").status_code == 200
        assert c.get("/api/audit").status_code == 200


def run_user_add(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    commands.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.handler(args)


def test_user_add_command(tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    db.migrate_and_load(url, create=True)
    monkeypatch.setenv("NEUROTRIAGE_DATABASE_URL", url)
    monkeypatch.setenv("NEUROTRIAGE_NEW_PASSWORD", "long enough now")
    assert run_user_add(["user", "add", "dr.who", "--role", "admin"]) == 0
    assert "added admin 'dr.who'" in capsys.readouterr().out
    with pytest.raises(UserError, match="already exists"):
        run_user_add(["user", "add", "dr.who"])
    monkeypatch.setenv("NEUROTRIAGE_NEW_PASSWORD", "short")
    with pytest.raises(UserError, match="at least 12"):
        run_user_add(["user", "add", "nurse"])
