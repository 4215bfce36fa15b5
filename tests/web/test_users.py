"""Managing accounts: `neurotriage user ...`, the admin's user page, a user's own password change,
disabled users, the last admin, and the checks `serve` makes before it starts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import pytest
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import select

from neurotriage.cli import main
from neurotriage.clinical import db
from neurotriage.clinical.models import Patient
from neurotriage.errors import UserError
from neurotriage.web import auth
from neurotriage.web.auth import add_user, authenticate
from neurotriage.web.commands import check_serve
from neurotriage.web.models import AuditEvent, Job, User
from neurotriage.web.throttle import LoginThrottle
from neurotriage.web.users import delete_user, find_user, set_disabled, set_role

from .conftest import fresh_web_settings
from .helpers import PASSWORD, csrf_of, make_client, page_csrf, sign_in

NEW_PASSWORD = "a fresh long passphrase"


@pytest.fixture
def own_web_settings(tmp_path):
    """A database of the test's own whose users are `clin`, a clinician, and `boss`, the one admin."""
    settings = fresh_web_settings(tmp_path)
    with db.transaction(settings.database_url) as session:
        set_role(session, find_user(session, "clin"), "clinician")
        delete_user(session, find_user(session, "doc"))
    return settings


@pytest.fixture
def client(own_web_settings) -> Iterator[TestClient]:
    """A client signed in as the clinician `clin`."""
    with make_client(own_web_settings) as c:
        assert sign_in(c, "clin").status_code == 200
        yield c


def user_row(settings, name: str) -> User | None:
    """The user's row as stored now, or None."""
    with db.transaction(settings.database_url) as session:
        return session.scalar(select(User).where(User.username == name))


def audit_actions(settings, target: str) -> list[str]:
    """The audit actions recorded against a target, oldest first."""
    with db.transaction(settings.database_url) as session:
        return list(
            session.scalars(select(AuditEvent.action).where(AuditEvent.target == target).order_by(AuditEvent.id))
        )


def change(settings, name: str, apply) -> None:
    """Apply a library change to the named user in one transaction."""
    with db.transaction(settings.database_url) as session:
        apply(session, find_user(session, name))


# The library: disabled users, the last admin, deletion.


def mark_disabled(session, user: User) -> None:
    """Only the flag, sessions untouched: the check of each request must refuse them by itself."""
    user.disabled = True


def test_a_disabled_user_is_refused_at_sign_in_like_a_wrong_password_and_mid_session(own_web_settings):
    with make_client(own_web_settings) as c:
        assert sign_in(c, "clin").status_code == 200
        change(own_web_settings, "clin", mark_disabled)
        assert c.get("/patients", follow_redirects=False).headers["location"] == "/login"
        refused = sign_in(c, "clin")
        assert refused.status_code == 401 and "Wrong username or password." in refused.text
        change(own_web_settings, "clin", lambda s, u: set_disabled(s, u, False))
        assert sign_in(c, "clin").status_code == 200


def test_a_disabled_user_costs_one_scrypt_like_any_other(own_web_settings, monkeypatch):
    checked = []
    monkeypatch.setattr(auth, "verify_password", lambda password, stored: checked.append(stored) or True)
    change(own_web_settings, "clin", lambda s, u: set_disabled(s, u, True))
    assert authenticate(lambda: db.transaction(own_web_settings.database_url), "clin", PASSWORD) is None
    assert checked == [user_row(own_web_settings, "clin").password_hash]


@pytest.mark.parametrize(
    ("apply", "verb"),
    [
        (lambda s, u: set_disabled(s, u, True), "disabled"),
        (lambda s, u: set_role(s, u, "clinician"), "demoted"),
        (delete_user, "deleted"),
    ],
)
def test_the_last_enabled_admin_is_kept(own_web_settings, apply, verb):
    with pytest.raises(UserError) as caught:
        change(own_web_settings, "boss", apply)
    assert caught.value.message.startswith(f"user 'boss': is the last enabled admin and cannot be {verb}")
    assert "\n" not in caught.value.message
    with db.transaction(own_web_settings.database_url) as session:
        add_user(session, "deputy", PASSWORD, "admin")
    change(own_web_settings, "deputy", lambda s, u: set_disabled(s, u, True))  # a disabled admin does not count
    with pytest.raises(UserError, match="last enabled admin"):
        change(own_web_settings, "boss", apply)
    change(own_web_settings, "deputy", lambda s, u: set_disabled(s, u, False))
    change(own_web_settings, "boss", apply)


def test_deleting_a_user_keeps_their_jobs_and_audit_entries(own_web_settings):
    with db.transaction(own_web_settings.database_url) as session:
        clin = find_user(session, "clin")
        patient_id = session.scalar(select(Patient.id))
        session.add(Job(patient_id=patient_id, user_id=clin.id, upload_name="case.zip", work_dir="/tmp/job"))
        session.add(AuditEvent(user_id=clin.id, username="clin", action="view", target="patients"))
    change(own_web_settings, "clin", delete_user)
    assert user_row(own_web_settings, "clin") is None
    with db.transaction(own_web_settings.database_url) as session:
        job = session.scalar(select(Job).where(Job.upload_name == "case.zip"))
        event = session.scalar(select(AuditEvent).where(AuditEvent.username == "clin"))
    assert job.user_id is None and event.user_id is None and event.target == "patients"


# The CLI.


@pytest.fixture
def cli_db(own_web_settings, monkeypatch):
    """The settings of a database the CLI uses (through NEUROTRIAGE_DATABASE_URL)."""
    monkeypatch.setenv("NEUROTRIAGE_DATABASE_URL", own_web_settings.database_url)
    monkeypatch.delenv("NEUROTRIAGE_NEW_PASSWORD", raising=False)
    return own_web_settings


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """Run `neurotriage ARGV`: exit code, stdout, stderr."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_user_list_add_role_disable_enable(cli_db, capsys, monkeypatch):
    monkeypatch.setenv("NEUROTRIAGE_NEW_PASSWORD", PASSWORD)
    assert run(capsys, "user", "add", "viewer", "--role", "read_only")[:2] == (0, "added read_only 'viewer' (id 3)\n")
    assert run(capsys, "user", "role", "viewer", "clinician")[:2] == (0, "'viewer' is now clinician\n")
    code, out, _ = run(capsys, "user", "disable", "viewer")
    assert code == 0 and out.startswith("disabled 'viewer'")
    code, out, _ = run(capsys, "user", "list")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["name", "role", "disabled", "created"]
    assert [line.split()[:3] for line in lines[1:]] == [
        ["boss", "admin", "no"],
        ["clin", "clinician", "no"],
        ["viewer", "clinician", "yes"],
    ]
    assert run(capsys, "user", "enable", "viewer")[1] == "enabled 'viewer': they can sign in again\n"
    assert not user_row(cli_db, "viewer").disabled


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["user", "disable", "nobody"], "user 'nobody': no such user"),
        (["user", "role", "clin", "superuser"], "role 'superuser': must be one of clinician, admin, read_only"),
        (["user", "add", "x", "--role", "root"], "--role: role 'root': must be one of"),
        (["user", "delete", "boss", "--yes"], "user 'boss': is the last enabled admin and cannot be deleted"),
        (["user", "role", "boss", "read_only"], "user 'boss': is the last enabled admin and cannot be demoted"),
    ],
)
def test_user_commands_refuse_bad_input_in_one_line(cli_db, capsys, monkeypatch, argv, message):
    monkeypatch.setenv("NEUROTRIAGE_NEW_PASSWORD", PASSWORD)
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and err.startswith(f"neurotriage: error: {message}") and err.count("\n") == 1


def test_user_delete_asks_unless_told_yes(cli_db, capsys, monkeypatch):
    answers = iter(["n", "yes"])
    monkeypatch.setattr("builtins.input", lambda prompt: next(answers))
    assert run(capsys, "user", "delete", "clin")[:2] == (1, "not deleted: 'clin'\n")
    assert user_row(cli_db, "clin") is not None
    assert run(capsys, "user", "delete", "clin")[:2] == (0, "deleted 'clin'\n")
    with db.transaction(cli_db.database_url) as session:
        add_user(session, "temp", PASSWORD)
    monkeypatch.setattr("builtins.input", lambda prompt: pytest.fail("asked despite --yes"))
    assert run(capsys, "user", "delete", "temp", "--yes")[:2] == (0, "deleted 'temp'\n")
    assert user_row(cli_db, "temp") is None


def test_user_passwd_asks_twice_or_reads_the_environment_and_ends_sessions(cli_db, capsys, monkeypatch):
    typed = iter([NEW_PASSWORD, "a typo in the second", NEW_PASSWORD, NEW_PASSWORD])
    monkeypatch.setattr("getpass.getpass", lambda prompt: next(typed))
    before = user_row(cli_db, "clin")
    code, _, err = run(capsys, "user", "passwd", "clin")
    assert code == 2 and err == "neurotriage: error: password_again: the two passwords differ\n"
    assert user_row(cli_db, "clin").password_hash == before.password_hash
    assert run(capsys, "user", "passwd", "clin")[:2] == (0, "new password for 'clin': their sessions have ended\n")
    after = user_row(cli_db, "clin")
    assert auth.verify_password(NEW_PASSWORD, after.password_hash)
    assert after.session_generation == before.session_generation + 1
    monkeypatch.setenv("NEUROTRIAGE_NEW_PASSWORD", PASSWORD)
    assert run(capsys, "user", "passwd", "clin")[0] == 0
    assert auth.verify_password(PASSWORD, user_row(cli_db, "clin").password_hash)


# The admin page.


@contextmanager
def admin_client(settings) -> Iterator[TestClient]:
    """A client signed in as the admin 'boss'."""
    with make_client(settings) as c:
        assert sign_in(c, "boss").status_code == 200
        yield c


def test_the_user_page_is_for_admins_only(client):
    assert client.get("/admin/users").status_code == 403
    token = page_csrf(client)
    assert client.post("/admin/users/1/disable", data={"csrf_token": token}).status_code == 403
    assert 'href="/admin/users"' not in client.get("/patients").text
    assert 'href="/account"' in client.get("/patients").text


def test_an_admin_adds_changes_and_deletes_users_and_every_change_is_audited(own_web_settings):
    with admin_client(own_web_settings) as c:
        listing = c.get("/admin/users")
        assert 'href="/admin/users"' in listing.text and 'href="/admin/audit"' in listing.text
        token = csrf_of(listing.text)
        weak = c.post("/admin/users", data={"username": "nurse", "password": "password", "csrf_token": token})
        assert weak.status_code == 400 and "password: must be at least 12 characters" in weak.text
        form = {"username": "nurse", "password": PASSWORD, "role": "read_only", "csrf_token": token}
        assert c.post("/admin/users", data=form).status_code == 200
        nurse = user_row(own_web_settings, "nurse")
        assert nurse.role == "read_only"
        base = f"/admin/users/{nurse.id}"
        assert c.post(f"{base}/role", data={"role": "clinician", "csrf_token": token}).status_code == 200
        assert c.post(f"{base}/disable", data={"csrf_token": token}).status_code == 200
        assert user_row(own_web_settings, "nurse").disabled
        assert c.post(f"{base}/enable", data={"csrf_token": token}).status_code == 200
        assert c.post(f"{base}/password", data={"password": NEW_PASSWORD, "csrf_token": token}).status_code == 200
        with make_client(own_web_settings) as nurse_client:
            assert sign_in(nurse_client, "nurse", NEW_PASSWORD).status_code == 200
        confirm = c.get(f"{base}/delete")
        assert confirm.status_code == 200 and "Delete user nurse?" in confirm.text
        assert user_row(own_web_settings, "nurse") is not None  # asking deletes nothing
        assert c.post(f"{base}/delete", data={"csrf_token": csrf_of(confirm.text)}).status_code == 200
        assert user_row(own_web_settings, "nurse") is None
        assert c.post(f"{base}/disable", data={"csrf_token": token}).status_code == 404
    assert audit_actions(own_web_settings, "user:nurse") == [
        "user_create", "role_change", "user_disable", "user_enable", "password_reset", "login", "user_delete"
    ]  # fmt: skip


def test_the_admin_page_refuses_forged_posts_and_keeps_the_last_admin(own_web_settings):
    with admin_client(own_web_settings) as c:
        boss = user_row(own_web_settings, "boss")
        assert c.post(f"/admin/users/{boss.id}/disable", data={"csrf_token": "forged"}).status_code == 403
        token = page_csrf(c, "/admin/users")
        for action, data in (("disable", {}), ("role", {"role": "clinician"}), ("delete", {})):
            r = c.post(f"/admin/users/{boss.id}/{action}", data=data | {"csrf_token": token})
            assert r.status_code == 400 and "user &#39;boss&#39;:" in r.text, action
        assert c.get("/admin/users").status_code == 200  # still an enabled admin
    stored = user_row(own_web_settings, "boss")
    assert (stored.role, stored.disabled) == ("admin", False)


def test_a_user_disabled_by_the_admin_is_signed_out_at_once(own_web_settings):
    with admin_client(own_web_settings) as c, make_client(own_web_settings) as victim:
        assert sign_in(victim, "clin").status_code == 200
        clin = user_row(own_web_settings, "clin")
        c.post(f"/admin/users/{clin.id}/disable", data={"csrf_token": page_csrf(c, "/admin/users")})
        assert victim.get("/patients", follow_redirects=False).headers["location"] == "/login"
        assert victim.get("/api/patients").status_code == 401


# A user's own password.


def change_own(c, current: str, new: str, again: str | None = None):
    """Post the account page's password form."""
    token = page_csrf(c, "/account")
    data = {"current_password": current, "password": new, "password_again": again or new, "csrf_token": token}
    return c.post("/account/password", data=data)


def test_changing_ones_own_password_ends_the_other_sessions_only(own_web_settings):
    with make_client(own_web_settings) as here, make_client(own_web_settings) as elsewhere:
        assert sign_in(here, "clin").status_code == 200 and sign_in(elsewhere, "clin").status_code == 200
        done = change_own(here, PASSWORD, NEW_PASSWORD)
        assert done.status_code == 200 and "Every other session of yours has ended" in done.text
        assert here.get("/patients").status_code == 200
        assert here.post("/api/patients", json={"name": "Still signed in"},
                         headers={"X-CSRF-Token": page_csrf(here)}).status_code == 201  # fmt: skip
        assert elsewhere.get("/patients", follow_redirects=False).headers["location"] == "/login"
        assert sign_in(elsewhere, "clin", PASSWORD).status_code == 401
        assert sign_in(elsewhere, "clin", NEW_PASSWORD).status_code == 200
    assert audit_actions(own_web_settings, "user:clin")[-3:] == ["password_change", "login_failed", "login"]


@pytest.mark.parametrize(
    ("current", "new", "again", "message"),
    [
        ("not my password", NEW_PASSWORD, None, "current_password: wrong password"),
        (PASSWORD, NEW_PASSWORD, "something else entirely", "password_again: the two passwords differ"),
        (PASSWORD, "password", None, "password: must be at least 12 characters"),
    ],
)
def test_a_refused_password_change_changes_nothing(own_web_settings, current, new, again, message):
    with make_client(own_web_settings) as c:
        assert sign_in(c, "clin").status_code == 200
        before = user_row(own_web_settings, "clin")
        r = change_own(c, current, new, again)
        assert r.status_code == 400 and message in r.text
        assert c.get("/patients").status_code == 200
    assert user_row(own_web_settings, "clin").password_hash == before.password_hash


def test_guessing_the_current_password_is_throttled_and_audited(own_web_settings):
    with make_client(own_web_settings) as c:
        c.app.state.throttle = LoginThrottle(clock=lambda: 0.0)
        assert sign_in(c, "clin").status_code == 200
        codes = [change_own(c, f"guess {n}", NEW_PASSWORD).status_code for n in range(6)]
        assert codes == [400] * 5 + [429]
        assert change_own(c, PASSWORD, NEW_PASSWORD).status_code == 429  # even the right one waits
    assert audit_actions(own_web_settings, "user:clin").count("password_change_failed") == 5


# What `serve` checks before it starts.


@pytest.fixture
def no_users(own_web_settings):
    """Settings of a migrated database without any user."""
    with db.transaction(own_web_settings.database_url) as session:
        for name in ("clin", "boss"):
            session.delete(find_user(session, name))
    return own_web_settings


def test_serve_refuses_a_database_nobody_can_sign_in_to(no_users, capsys, monkeypatch):
    monkeypatch.setenv("NEUROTRIAGE_DATABASE_URL", no_users.database_url)
    for name in ("NEUROTRIAGE_ADMIN_USER", "NEUROTRIAGE_ADMIN_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("the server started"))
    code, _, err = run(capsys, "serve")
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("neurotriage: error: no user can sign in: add an admin with `neurotriage user add NAME")
    assert "--allow-no-users" in err
    assert check_serve(no_users, "127.0.0.1", allow_no_users=True) == []
    first_admin = replace(no_users, admin_user="root", admin_password=NEW_PASSWORD)
    assert check_serve(first_admin, "127.0.0.1", allow_no_users=False) == []
    with pytest.raises(UserError, match="^NEUROTRIAGE_ADMIN_PASSWORD: must be at least 12 characters$"):
        check_serve(replace(first_admin, admin_password="short"), "127.0.0.1", allow_no_users=False)


def test_serve_refuses_when_every_user_is_disabled(own_web_settings):
    with db.transaction(own_web_settings.database_url) as session:
        for user in session.scalars(select(User)):
            user.disabled = True
    with pytest.raises(UserError, match="^no user can sign in"):
        check_serve(own_web_settings, "127.0.0.1", allow_no_users=False)


@pytest.mark.parametrize(
    ("host", "secure", "warns"),
    [
        ("0.0.0.0", True, True),
        ("192.168.1.20", True, True),
        ("ward-pc.example", True, True),
        ("0.0.0.0", False, False),
        ("127.0.0.1", True, False),
        ("::1", True, False),
        ("localhost", True, False),
    ],
)
def test_serve_warns_that_secure_cookies_fail_over_plain_http_off_loopback(own_web_settings, host, secure, warns):
    warnings = check_serve(replace(own_web_settings, secure_cookies=secure), host, allow_no_users=False)
    assert bool(warnings) == warns
    if warns:
        (line,) = warnings
        assert host in line and "CSRF check failed" in line
        assert "HTTPS reverse proxy" in line and "--insecure-cookies" in line


def test_serve_prints_the_warning_and_still_starts(own_web_settings, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NEUROTRIAGE_DATABASE_URL", own_web_settings.database_url)
    monkeypatch.setenv("NEUROTRIAGE_HOME", str(tmp_path))
    monkeypatch.delenv("NEUROTRIAGE_SECURE_COOKIES", raising=False)
    started = []
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, **_: started.append((host, port)))
    code, _, err = run(capsys, "serve", "--host", "0.0.0.0", "--port", "8123")
    assert code == 0 and started == [("0.0.0.0", 8123)]
    assert err.startswith("warning: serving plain HTTP on 0.0.0.0 with Secure session cookies")
    assert run(capsys, "serve", "--host", "0.0.0.0", "--insecure-cookies")[2] == ""


def test_user_add_refuses_a_bad_role_before_asking_and_a_password_it_cannot_read(cli_db, capsys, monkeypatch):
    def no_input(prompt: str) -> str:
        raise EOFError

    monkeypatch.setattr("getpass.getpass", no_input)
    assert run(capsys, "user", "add", "bob", "--role", "root")[0] == 2
    code, _, err = run(capsys, "user", "add", "bob")
    assert code == 2 and err.strip().endswith("set NEUROTRIAGE_NEW_PASSWORD") and err.count("\n") == 1
