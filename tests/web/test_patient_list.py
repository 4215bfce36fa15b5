"""The patient list: each patient's status, sorting, paging and the care-team filter, all in SQL (on SQLite and
PostgreSQL), and the list page and API that show it."""

from __future__ import annotations

import random
import string
import uuid
from datetime import date, timedelta

import pytest
from sqlalchemy import event

from neurotriage.anatomy.location import parse_location
from neurotriage.clinical import db, decisions, intake
from neurotriage.clinical.models import CrossCheckRecord, Review, utcnow
from neurotriage.web.auth import add_user
from neurotriage.web.models import PatientAccess, User
from neurotriage.web.patient_list import STATUSES, list_page

from ..clinical.conftest import db_factory, db_url, migrated_url, postgres_url  # noqa: F401  (both backends)
from ..clinical.locates import locate
from .helpers import PASSWORD, make_client, sign_in

ADMIN = User(username="list-admin", role="admin")  # an admin's list needs no row of its own
HOUR = timedelta(hours=1)


def _finding(session, pid: int, needs_review: bool = False) -> int:
    """A stored finding of study 'F' with a cross-check (no referral: the status does not read one)."""
    finding = decisions.store_finding(session, pid, "F", parse_location(locate("right")), "m")
    session.add(CrossCheckRecord(patient_id=pid, finding_id=finding.id, verdict="v", needs_review=needs_review,
                                 inputs={}, result={}))  # fmt: skip
    session.flush()
    return finding.id


def _make_status(session, pid: int, status: str) -> None:
    """Give the patient the studies and findings that make `status`."""
    now = utcnow()
    if status == "no study":
        return
    if status in ("diagnosed", "diagnosed — needs review", "signed off"):
        fid = _finding(session, pid, needs_review=status != "diagnosed")
        if status == "signed off":
            session.add(Review(finding_id=fid, location_decision="confirm", verdict_decision="confirm", comment=""))
        return
    study = intake.study_for(session, pid, "S")
    if status in ("queued", "running"):
        study.queued_at = now
    if status == "running":
        study.claim_token, study.lease_until = "token", now + HOUR
    if status == "failed":
        study.parked_at, study.last_error = now, "broken"


# name, birth date, status: names and birth dates in an order of their own, unlike the status order.
PEOPLE = (
    ("Hugo", "1950-01-01", "diagnosed"),
    ("ada", "1990-05-05", "signed off"),
    ("Émile", None, "failed"),
    ("Bea", "1970-03-03", "no study"),
    ("Greta", "1960-02-02", "running"),
    ("Dora", None, "diagnosed — needs review"),
    ("Cleo", "1980-04-04", "queued"),
    ("Finn", "2000-06-06", "not diagnosed"),
)


@pytest.fixture
def world(db_url) -> dict[str, int]:  # noqa: F811
    """A patient of each status: name -> id."""
    with db.transaction(db_url) as session:
        ids = {}
        for name, born, status in PEOPLE:
            pid = intake.add_patient(session, name, birth_date=born).id
            _make_status(session, pid, status)
            ids[name] = pid
        return ids


def names(url: str, user: User = ADMIN, **asked) -> list[str]:
    with db.transaction(url) as session:
        return [p["name"] for p in list_page(session, user, **asked).patients]


def test_each_patient_has_the_status_of_its_studies_and_findings(db_url, world):  # noqa: F811
    with db.transaction(db_url) as session:
        listing = list_page(session, ADMIN)
    assert {p["name"]: p["status"] for p in listing.patients} == {name: status for name, _, status in PEOPLE}
    assert (listing.total, listing.pages) == (len(PEOPLE), 1)


def test_a_page_is_two_queries_however_many_rows(db_url, world):  # noqa: F811
    statements = []
    with db.transaction(db_url) as session:
        engine = session.get_bind()
        listen = lambda *args: statements.append(args[2])  # noqa: E731  (the statement's text)
        event.listen(engine, "before_cursor_execute", listen)
        try:
            assert len(list_page(session, ADMIN, sort="status").patients) == len(PEOPLE)
        finally:
            event.remove(engine, "before_cursor_execute", listen)
    reads = [text for text in statements if "FROM" in text]  # PostgreSQL's clock is read without a table
    assert len(reads) == 2  # the count and the page


def test_sorting_by_each_column_either_way(db_url, world):  # noqa: F811
    by_status = [name for status in STATUSES for name, _, s in PEOPLE if s == status]
    assert names(db_url, sort="status") == by_status
    assert names(db_url, sort="status", order="desc") == by_status[::-1]
    assert names(db_url, sort="name") == ["ada", "Bea", "Cleo", "Dora", "Émile", "Finn", "Greta", "Hugo"]
    assert names(db_url, sort="born") == ["Hugo", "Greta", "Bea", "Cleo", "ada", "Finn", "Émile", "Dora"]
    assert names(db_url, sort="born", order="desc") == ["Finn", "ada", "Cleo", "Bea", "Greta", "Hugo", "Dora", "Émile"]
    assert names(db_url, sort="id", order="desc") == [name for name, _, _ in PEOPLE][::-1]


def test_sorting_by_the_newest_study_uses_its_date_else_when_it_was_added(db_url, world):  # noqa: F811
    with db.transaction(db_url) as session:
        intake.study_for(session, world["Bea"], "old", study_date=date(2001, 1, 1))
        intake.study_for(session, world["Bea"], "older", study_date=date(1999, 1, 1))
        intake.add_patient(session, "Ivo")  # no study
        rising, falling = (list_page(session, ADMIN, sort="study", order=order) for order in ("asc", "desc"))
    today = utcnow().date().isoformat()  # the other studies carry no date and were added today
    assert [(p["name"], p["last_study"]) for p in rising.patients[:2]] == [("Bea", "2001-01-01"), ("Hugo", today)]
    assert [p["name"] for p in falling.patients[-2:]] == ["Bea", "Ivo"]
    assert rising.patients[-1]["name"] == "Ivo"  # no study: last either way


def test_pages_cover_the_list_once_in_order(db_url, world):  # noqa: F811
    whole = names(db_url, sort="name")
    with db.transaction(db_url) as session:
        pages = [list_page(session, ADMIN, sort="name", page=n, per_page=3) for n in (1, 2, 3, 4)]
    assert [(p.total, p.pages) for p in pages] == [(8, 3)] * 4
    assert [p["name"] for page in pages for p in page.patients] == whole
    assert [len(page.patients) for page in pages] == [3, 3, 2, 0]


def test_a_clinician_lists_and_counts_only_their_patients(db_url, world):  # noqa: F811
    with db.transaction(db_url) as session:
        user = add_user(session, f"lister-{uuid.uuid4().hex[:8]}", PASSWORD)
        grants = [("Hugo", "team", None), ("ada", "team", None), ("Cleo", "team", None),
                  ("Dora", "break_glass", utcnow() + HOUR), ("Finn", "break_glass", utcnow() - HOUR)]  # fmt: skip
        for name, kind, until in grants:
            session.add(PatientAccess(patient_id=world[name], user_id=user.id, kind=kind, granted_by="t",
                                      expires_at=until))  # fmt: skip
        session.flush()
        first, second = (list_page(session, user, sort="name", page=n, per_page=3) for n in (1, 2))
        searched = list_page(session, user, q="a")  # of ada, Bea, Dora and Greta, theirs are ada and Dora
    assert [p["name"] for p in first.patients + second.patients] == ["ada", "Cleo", "Dora", "Hugo"]
    assert (first.total, first.pages, len(second.patients)) == (4, 2, 1)
    assert ({p["name"] for p in searched.patients}, searched.total) == ({"ada", "Dora"}, 2)


@pytest.fixture
def listed(web_settings) -> dict[str, int]:
    """Five patients of this test's own in the shared web database, all named with one marker of letters (a
    digit in a name would match a search by id): name -> id."""
    marker = "".join(random.choices(string.ascii_lowercase, k=8))
    with db.transaction(web_settings.database_url) as session:
        made = [intake.add_patient(session, f"Zoë {marker} {n}", birth_date=f"19{40 + n}-01-0{n}") for n in range(1, 6)]
        return {p.name: p.id for p in made} | {"marker": marker}


def test_the_list_page_has_pages_sortable_headers_and_a_status(client, listed):
    marker = listed["marker"]
    first = client.get("/patients", params={"q": f"ZOË {marker}", "per_page": 2, "sort": "born", "order": "desc"})
    assert first.status_code == 200
    assert f"Page 1 of 3 · 5 patients matching “ZOË {marker}”" in first.text
    assert [f"Zoë {marker} {n}" in first.text for n in range(1, 6)] == [False, False, False, True, True]
    query = f"q=ZO%C3%8B+{marker}"
    assert f'href="/patients?{query}&amp;sort=born&amp;order=desc&amp;page=2&amp;per_page=2" rel="next"' in first.text
    assert 'rel="prev"' not in first.text
    assert f'<th aria-sort="descending"><a href="/patients?{query}&amp;sort=born&amp;order=asc&amp;page=1' in first.text
    assert f'<a href="/patients?{query}&amp;sort=name&amp;order=asc&amp;page=1&amp;per_page=2">Name</a>' in first.text
    assert '<td class="status">no study</td>' in first.text
    last = client.get("/patients", params={"q": f"zoe {marker}", "per_page": 2, "page": 3, "sort": "born"}).text
    assert 'rel="prev"' in last and 'rel="next"' not in last and f"Zoë {marker} 5" in last


def test_the_api_lists_a_page_with_the_total(client, listed):
    marker = listed["marker"]
    got = client.get("/api/patients", params={"q": marker, "per_page": 2, "page": 2, "sort": "name", "order": "desc"})
    body = got.json()
    assert (body["total"], body["page"], body["per_page"], body["pages"]) == (5, 2, 2, 3)
    assert [(p["name"], p["status"], p["last_study"]) for p in body["patients"]] == [
        (f"Zoë {marker} 3", "no study", None), (f"Zoë {marker} 2", "no study", None)
    ]  # fmt: skip
    pid = listed[f"Zoë {marker} 4"]
    for search in (str(pid), f"#{pid}", "1944-01-04"):
        assert pid in [p["id"] for p in client.get("/api/patients", params={"q": search}).json()["patients"]]
    born = client.get("/api/patients", params={"q": "1944-01-04"}).json()["patients"]
    assert {p["birth_date"] for p in born} == {"1944-01-04"}
    for bad in ({"sort": "colour"}, {"order": "up"}, {"page": 0}, {"per_page": 201}):
        assert client.get("/api/patients", params=bad).status_code == 422, bad


def test_a_clinicians_count_is_of_their_own_patients(web_settings, listed):
    marker = listed["marker"]
    with db.transaction(web_settings.database_url) as session:
        doc = session.query(User).filter_by(username="doc").one()
        for n in (2, 5):
            access_row = PatientAccess(
                patient_id=listed[f"Zoë {marker} {n}"], user_id=doc.id, kind="team", granted_by="t"
            )
            session.add(access_row)
    with make_client(web_settings) as c:
        assert sign_in(c, "doc").status_code == 200
        body = c.get("/api/patients", params={"q": marker, "per_page": 1}).json()
        assert (body["total"], body["pages"], [p["name"] for p in body["patients"]]) == (2, 2, [f"Zoë {marker} 2"])
        assert f"Page 1 of 1 · 2 patients matching “{marker}”" in c.get("/patients", params={"q": marker}).text
