"""Sessions that end on the server, login throttling, equal timing for unknown users, scrypt outside
the write lock, and the password policy."""

from __future__ import annotations

import statistics
import threading
import time

import pytest
from fastapi.testclient import TestClient

from neurotriage.clinical import db
from neurotriage.errors import UserError
from neurotriage.web import auth
from neurotriage.web.auth import add_user, authenticate, change_password, ensure_admin
from neurotriage.web.passwords import check_password
from neurotriage.web.throttle import LoginThrottle, Throttle

from .helpers import PASSWORD, make_client, page_csrf, sign_in

COOKIE = "neurotriage_session"


def new_user(settings, name: str) -> int:
    """Add a clinician of this test's own (signing out ends every session of a user)."""
    with db.transaction(settings.database_url) as session:
        return add_user(session, name, PASSWORD).id


def copied_cookie_client(c: TestClient, cookie: str) -> TestClient:
    """Another client of the same app that sends a copy of a session cookie."""
    other = TestClient(c.app, base_url="https://testserver")
    other.cookies.set(COOKIE, cookie)
    return other


def refused(client: TestClient, token: str) -> bool:
    """Whether both a page and a write are refused as not signed in."""
    page = client.get("/patients", follow_redirects=False)
    write = client.post("/api/patients", json={"name": "Via copied cookie"}, headers={"X-CSRF-Token": token})
    return (page.status_code, page.headers.get("location"), write.status_code) == (303, "/login", 401)


def test_logout_refuses_every_copy_of_the_cookie(web_settings):
    new_user(web_settings, "leaver")
    with make_client(web_settings) as c:
        assert sign_in(c, "leaver").status_code == 200
        cookie, token = c.cookies.get(COOKIE), page_csrf(c)
        copy = copied_cookie_client(c, cookie)
        assert copy.get("/patients").status_code == 200  # the copy works while the session lives
        assert c.post("/logout", data={"csrf_token": token}, follow_redirects=False).status_code == 303
        assert refused(copy, token)
        assert sign_in(c, "leaver").status_code == 200  # signing in again starts a valid session


def test_a_new_password_ends_the_sessions(web_settings):
    uid = new_user(web_settings, "changer")
    with make_client(web_settings) as c:
        assert sign_in(c, "changer").status_code == 200
        token = page_csrf(c)
        with db.transaction(web_settings.database_url) as session:
            change_password(session, uid, "a brand new passphrase")
        assert refused(c, token)
        assert sign_in(c, "changer", PASSWORD).status_code == 401
        assert sign_in(c, "changer", "a brand new passphrase").status_code == 200


def test_guessing_backs_off_exponentially_and_the_right_password_works_after(web_settings):
    now = [0.0]
    with make_client(web_settings) as c:
        c.app.state.throttle = LoginThrottle(clock=lambda: now[0])
        checked, waited, last = 0, 0.0, None
        while checked < 60:  # a guesser that waits exactly as long as it is told
            last = sign_in(c, "clin", f"guess {checked}")
            if last.status_code == 429:
                delay = int(last.headers["retry-after"])
                assert delay >= 1 and "Too many failed sign-ins: try again in" in last.text
                now[0] += delay
                waited += delay
            else:
                assert last.status_code == 401
                checked += 1
        assert waited > 3600  # 60 guesses took over an hour, not 5 s
        refused_now = sign_in(c, "clin", PASSWORD)
        assert refused_now.status_code == 429  # even the right password waits its turn
        now[0] += int(refused_now.headers["retry-after"])
        assert sign_in(c, "clin", PASSWORD).status_code == 200


def test_one_clients_guessing_locks_neither_other_accounts_nor_other_clients(web_settings):
    now = [0.0]
    with make_client(web_settings) as c:
        c.app.state.throttle = LoginThrottle(clock=lambda: now[0])
        for attempt in range(6):
            sign_in(c, "clin", f"guess {attempt}")
        assert sign_in(c, "clin", PASSWORD).status_code == 429
        assert sign_in(c, "boss", PASSWORD).status_code == 200  # under the client's own limit
    throttle = LoginThrottle(clock=lambda: now[0])
    for attempt in range(20):
        throttle.record(f"user{attempt}", "10.0.0.1", ok=False)
    assert throttle.retry_after_s("boss", "10.0.0.1") > 0  # the guessing client is held back
    assert throttle.retry_after_s("boss", "10.0.0.2") == 0  # others are not
    assert throttle.retry_after_s("user1", "10.0.0.2") == 0


def test_throttle_memory_is_bounded():
    throttle = Throttle(free=5, max_keys=100)
    for key in range(1000):
        throttle.failed(f"10.0.{key // 256}.{key % 256}")
    assert len(throttle) == 100


def test_unknown_and_existing_users_cost_the_same(web_settings):
    def open_session():
        return db.transaction(web_settings.database_url)

    def timed(username: str) -> float:
        start = time.perf_counter()
        assert authenticate(open_session, username, "wrong password") is None
        return time.perf_counter() - start

    timed("nobody")  # the first unknown user computes the dummy hash
    known, unknown = [], []
    for _ in range(15):  # interleaved, so that load on the machine hits both alike
        known.append(timed("clin"))
        unknown.append(timed("nobody"))
    ratio = statistics.median(unknown) / statistics.median(known)
    assert 0.9 < ratio < 1.1, f"unknown/existing median login time {ratio:.2f}"


def login_loop(app, stop: threading.Event) -> None:
    """Failed logins until told to stop."""
    client = TestClient(app, base_url="https://testserver")
    while not stop.is_set():
        sign_in(client, "clin", "wrong password")


def page_seconds(client: TestClient, n: int) -> float:
    """The median time of n patient list pages."""
    times = []
    for _ in range(n):
        start = time.perf_counter()
        assert client.get("/patients").status_code == 200
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def test_failed_logins_do_not_hold_up_other_users(web_settings):
    with make_client(web_settings) as c:
        c.app.state.throttle = LoginThrottle(account_free=10**9, client_free=10**9)
        assert sign_in(c, "boss").status_code == 200
        idle = page_seconds(c, 9)
        stop = threading.Event()
        threads = [threading.Thread(target=login_loop, args=(c.app, stop)) for _ in range(4)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(0.3)
            busy = page_seconds(c, 9)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=10)
    print(f"patient list median: idle {idle * 1000:.1f} ms, during 4 guessing loops {busy * 1000:.1f} ms")
    assert busy < 4 * idle + 0.02, f"idle {idle * 1000:.1f} ms, busy {busy * 1000:.1f} ms"


def test_the_password_is_checked_with_the_write_gate_open(web_settings, monkeypatch):
    seen = []
    with make_client(web_settings) as c:
        gate, verify = c.app.state.gate, auth.verify_password

        def verify_and_probe(password: str, stored: str) -> bool:
            taken = threading.Event()

            def take() -> None:
                with gate.held():
                    taken.set()

            threading.Thread(target=take, daemon=True).start()
            seen.append(taken.wait(2))  # another thread gets the gate while scrypt runs
            return verify(password, stored)

        monkeypatch.setattr(auth, "verify_password", verify_and_probe)
        assert sign_in(c, "clin", "wrong password").status_code == 401
    assert seen == [True]


@pytest.mark.parametrize("password", ["password", "123456789012", "passwordpassword", "1qaz2wsx3edc"])
def test_weak_passwords_are_refused_naming_the_field(password):
    with pytest.raises(UserError) as caught:
        check_password(password)
    assert caught.value.field == "password" and caught.value.message.startswith("password: ")
    assert "\n" not in caught.value.message


def test_the_policy_applies_to_new_users_password_changes_and_the_first_admin(web_settings, tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    db.migrate_and_load(url, create=True)
    with db.transaction(url) as session, pytest.raises(UserError, match="repeated or consecutive"):
        ensure_admin(session, "root", "passwordpassword")
    uid = new_user(web_settings, "policy")
    with db.transaction(web_settings.database_url) as session:
        with pytest.raises(UserError, match="at least 12"):
            add_user(session, "weak", "password")
        with pytest.raises(UserError, match="most common"):
            change_password(session, uid, "qwerty123456")
    check_password(PASSWORD)
