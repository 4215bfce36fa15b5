"""The diagnosis queue on SQLite and PostgreSQL: claims, leases, the fence, failures and parking.

These tests replace `diagnose` by a stand-in that stores a bare finding through the claim's fence, so
they exercise the queue, not the imaging; tests/diagnosis/test_workers.py runs the real chain.
"""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager, nullcontext
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from neurotriage.clinical import db, intake
from neurotriage.clinical.models import Finding, Study, utcnow
from neurotriage.diagnosis import batch, cases, pipeline, queue
from neurotriage.diagnosis.queue import ClaimLost, QueueSettings
from neurotriage.imaging.naming import BRATS2020
from neurotriage.imaging.synth import generate_case, write_case

SETTINGS = QueueSettings(lease_s=30, max_attempts=2)


def add_studies(url: str, folder: Path, n: int) -> list[int]:
    """One patient with `n` studies whose case folders exist (empty: the stand-in never reads them)."""
    with db.transaction(url) as session:
        patient = intake.add_patient(session, "Queue Patient", city="Leeds", lat="53.80", lon="-1.55")
        ids = []
        for i in range(n):
            (folder / f"case{i}").mkdir(parents=True)
            ids.append(intake.study_for(session, patient.id, str(folder / f"case{i}")).id)
    return ids


def store_bare_finding(_folder, _patient_id, options, _timer, case_ref, fence=None, write_lock=nullcontext):
    """Stands in for `diagnose`: stores a finding for the study through the fence, as `store` does."""
    with write_lock(), db.transaction(options.url) as session:
        fence(session)
        study = session.scalar(select(Study).where(Study.case_ref == case_ref))
        finding = Finding(study_id=study.id, locate={}, model_id="stand-in")
        session.add(finding)
        session.flush()
        return {"finding_id": finding.id, "report_dir": case_ref}


def findings_per_study(url: str) -> dict[int, int]:
    with db.transaction(url) as session:
        rows = session.execute(select(Finding.study_id, func.count()).group_by(Finding.study_id)).all()
        return dict(rows)


def study(url: str, study_id: int) -> Study:
    with db.transaction(url) as session:
        return session.get(Study, study_id)


def expire_lease(url: str, study_id: int) -> None:
    with db.transaction(url) as session:
        session.execute(update(Study).where(Study.id == study_id).values(lease_until=utcnow() - timedelta(hours=1)))


@pytest.fixture
def queued(db_url: str, tmp_path: Path) -> list[int]:
    """Three queued studies."""
    ids = add_studies(db_url, tmp_path, 3)
    assert queue.enqueue_pending(db_url) == 3
    return ids


def test_enqueue_takes_pending_studies_once(db_url, queued):
    assert queue.enqueue_pending(db_url) == 0
    assert queue.queue_counts(db_url) == {"waiting": 3, "claimed": 0, "parked": 0, "not_queued": 0}


def test_concurrent_claimers_never_share_a_study(db_url, tmp_path):
    ids = add_studies(db_url, tmp_path, 24)
    queue.enqueue_pending(db_url)
    claimed: list[int] = []

    def claim_all(name: str) -> None:
        while (got := queue.claim(SETTINGS, name, db_url)) is not None:
            claimed.append(got.study_id)

    threads = [threading.Thread(target=claim_all, args=(f"claimer-{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == ids
    assert queue.queue_counts(db_url)["claimed"] == 24


def test_claims_go_oldest_first_and_hold_while_the_lease_runs(db_url, queued):
    first = queue.claim(SETTINGS, "a", db_url)
    second = queue.claim(SETTINGS, "b", db_url)
    assert (first.study_id, second.study_id) == (queued[0], queued[1])
    assert (first.attempt, first.waiting, second.waiting) == (1, 2, 1)
    assert queue.claim(SETTINGS, "c", db_url, exclude={queued[2]}) is None
    held = study(db_url, first.study_id)
    assert (held.claimed_by, held.claim_token, held.attempts) == ("a", first.token, 1)


def test_a_claim_can_be_limited_to_some_studies(db_url, queued):
    only_last = Study.id == queued[2]
    claimed = queue.claim(SETTINGS, "picky", db_url, where=only_last)
    assert (claimed.study_id, claimed.waiting) == (queued[2], 0)
    assert queue.claim(SETTINGS, "picky", db_url, where=only_last) is None
    assert queue.claim(SETTINGS, "any", db_url).study_id == queued[0]


def test_the_write_lock_is_held_around_the_storing_transaction(db_url, queued, monkeypatch):
    held = []

    @contextmanager
    def lock():
        held.append("in")
        yield
        held.append("out")

    monkeypatch.setattr(batch, "diagnose", store_bare_finding)
    claimed = queue.claim(SETTINGS, "locked", db_url)
    row = batch.diagnose_claimed(claimed, pipeline.DiagnoseOptions(url=db_url), SETTINGS, write_lock=lock)
    assert row["status"] == "ok" and held == ["in", "out"]


def test_an_expired_lease_is_taken_over_and_the_stale_claim_cannot_store(db_url, queued):
    stale = queue.claim(SETTINGS, "slow", db_url, exclude=queued[1:])
    assert queue.claim(SETTINGS, "other", db_url, exclude=queued[1:]) is None
    expire_lease(db_url, stale.study_id)
    fresh = queue.claim(SETTINGS, "other", db_url, exclude=queued[1:])
    assert (fresh.study_id, fresh.attempt) == (stale.study_id, 2)
    assert "attempt 1 by slow did not finish" in study(db_url, stale.study_id).last_error
    assert not queue.renew(stale, SETTINGS) and queue.renew(fresh, SETTINGS)
    options = pipeline.DiagnoseOptions(url=db_url)
    with pytest.raises(ClaimLost, match="other took it over"):
        store_bare_finding(None, None, options, None, stale.case_ref, stale.fence)
    with pytest.raises(ClaimLost):
        queue.record_failure(stale, "too late", SETTINGS)
    store_bare_finding(None, None, options, None, fresh.case_ref, fresh.fence)
    assert findings_per_study(db_url) == {stale.study_id: 1}
    done = study(db_url, stale.study_id)
    assert (done.queued_at, done.claim_token, done.lease_until) == (None, None, None)


def test_a_claim_cannot_store_a_second_finding(db_url, queued):
    """Even a valid token stops at the fence when the study was diagnosed meanwhile."""
    claimed = queue.claim(SETTINGS, "a", db_url)
    with db.transaction(db_url) as session:
        session.add(Finding(study_id=claimed.study_id, locate={}, model_id="by hand"))
    with pytest.raises(ClaimLost, match="already diagnosed"):
        store_bare_finding(None, None, pipeline.DiagnoseOptions(url=db_url), None, claimed.case_ref, claimed.fence)
    assert findings_per_study(db_url) == {claimed.study_id: 1}


def test_a_failing_study_is_parked_and_does_not_block_the_batch(db_url, queued, monkeypatch):
    bad = queued[0]
    with db.transaction(db_url) as session:
        session.get(Study, bad).case_ref = "gone"  # no folder, no seed: a user error each time
    monkeypatch.setattr(batch, "diagnose", store_bare_finding)
    options = pipeline.DiagnoseOptions(url=db_url)
    rows = batch.drain(options, SETTINGS, batch.Progress(), retry=True, until="empty")
    assert [(r["study_id"], r["status"]) for r in rows] == [
        (bad, "failed"),
        (queued[1], "ok"),
        (queued[2], "ok"),
        (bad, "parked"),
    ]
    parked = study(db_url, bad)
    assert (parked.attempts, parked.queued_at, parked.claim_token) == (2, None, None)
    assert parked.parked_at is not None and "case folder not found" in parked.last_error
    assert queue.queue_counts(db_url)["parked"] == 1
    assert queue.claim(SETTINGS, "later", db_url) is None
    assert queue.enqueue_pending(db_url) == 0  # parked studies are not queued again
    assert queue.enqueue_pending(db_url, parked=True) == 1  # unless asked to
    again = study(db_url, bad)
    assert (again.attempts, again.parked_at) == (0, None) and again.queued_at is not None


def test_a_worker_that_stopped_renewing_on_its_last_attempt_gets_the_study_parked(db_url, queued):
    """A case that kills its workers: each claim runs out; after the last allowed attempt it is parked."""
    for _ in range(SETTINGS.max_attempts):
        lost = queue.claim(SETTINGS, "crashing", db_url, exclude=queued[1:])
        expire_lease(db_url, lost.study_id)
    assert queue.claim(SETTINGS, "next", db_url, exclude=queued[1:]) is None
    parked = study(db_url, queued[0])
    assert parked.parked_at is not None and "did not finish" in parked.last_error


def test_an_unexpected_error_is_recorded_and_the_batch_goes_on(db_url, queued, monkeypatch):
    def broken(folder, *args, **kwargs):
        if folder.name == "case0":
            raise TypeError("a bug in one case")
        return store_bare_finding(folder, *args, **kwargs)

    monkeypatch.setattr(batch, "diagnose", broken)
    result = batch.diagnose_pending(pipeline.DiagnoseOptions(url=db_url), quiet=True, settings=SETTINGS)
    assert (result["done"], result["failed"], result["parked"]) == (2, 1, 0)
    assert study(db_url, queued[0]).last_error == "internal error: TypeError: a bug in one case"
    assert result["queue"]["waiting"] == 1  # tried once per batch run, queued again for the next


def test_an_interrupted_study_is_given_back_without_counting_the_attempt(db_url, queued, monkeypatch):
    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(batch, "diagnose", interrupted)
    claimed = queue.claim(SETTINGS, "a", db_url)
    with pytest.raises(KeyboardInterrupt):
        batch.diagnose_claimed(claimed, pipeline.DiagnoseOptions(url=db_url), SETTINGS)
    back = study(db_url, claimed.study_id)
    assert (back.attempts, back.claim_token, back.last_error) == (0, None, None)
    assert queue.claim(SETTINGS, "b", db_url).study_id == claimed.study_id


def test_the_lease_is_renewed_while_a_study_runs(db_url, queued, monkeypatch):
    quick = QueueSettings(lease_s=1.5)
    claimed = queue.claim(quick, "a", db_url)
    before = study(db_url, claimed.study_id).lease_until
    with queue.keep_alive(claimed, quick):
        threading.Event().wait(2.0)  # past the first lease: renewed every 0.5 s meanwhile
        assert study(db_url, claimed.study_id).lease_until > before
        assert queue.claim(quick, "b", db_url, exclude=queued[1:]) is None


def test_two_processes_generating_one_synthetic_case_share_the_winners_folder(tmp_path, monkeypatch):
    """Both builders finish; the second keeps the first one's folder instead of replacing it."""
    monkeypatch.setattr(cases, "synthetic_cases_dir", lambda: tmp_path)
    both_built = threading.Barrier(2)

    def write_case(case, out_dir, _naming):
        folder = out_dir / case
        folder.mkdir()
        (folder / "made_by").write_text(threading.current_thread().name)
        both_built.wait(timeout=10)  # each has its own build before either renames
        return folder

    monkeypatch.setattr("neurotriage.imaging.synth.generate_case", lambda _seed, case_id: case_id)
    monkeypatch.setattr("neurotriage.imaging.synth.write_case", write_case)
    found: list[Path] = []
    threads = [threading.Thread(target=lambda: found.append(cases.case_folder("SYN_0007", 7))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert found == [tmp_path / "SYN_0007"] * 2
    assert [p.name for p in tmp_path.iterdir()] == ["SYN_0007"]  # the loser's build is gone
    assert (tmp_path / "SYN_0007" / "made_by").read_text().startswith("Thread")


def test_enqueue_from_the_cli_queues_and_says_how_many(db_url, queued, tmp_path, cli):
    add_studies(db_url, tmp_path / "more", 2)
    run = cli("diagnose", "--all-pending", "--enqueue", "--json")
    assert run.code == 0
    assert json.loads(run.out) == {"queued": 2, "waiting": 5, "claimed": 0, "parked": 0, "not_queued": 0}
    run = cli("diagnose", "--all-pending", "--enqueue")
    assert run.out.startswith("0 studies queued; 5 waiting, 0 being diagnosed, 0 parked.")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["diagnose", "--enqueue"], "--enqueue: only with --all-pending"),
        (["diagnose", "--retry-parked"], "--retry-parked: only with --all-pending"),
        (["worker", "--lease", "0"], "--lease: must be a positive number of seconds, got 0"),
        (["worker", "--max-attempts", "0"], "--max-attempts: must be at least 1, got 0"),
    ],
)
def test_queue_options_are_checked(args, message, cli):
    run = cli(*args)
    assert (run.code, run.err.strip()) == (2, f"neurotriage: error: {message}")


@pytest.mark.slow
def test_a_taken_over_study_stores_nothing_and_leaves_no_report(db_url, tmp_path, oracle, monkeypatch):
    """The real chain: the lease runs out mid-diagnosis and another worker claims the study."""
    monkeypatch.setenv("NEUROTRIAGE_HOME", str(tmp_path / "home"))
    case = write_case(generate_case(11, "SYN_RF", kind="enhancing"), tmp_path, BRATS2020)
    with db.transaction(db_url) as session:
        patient = intake.add_patient(session, "Slow Worker", city="Leeds", lat="53.80", lon="-1.55")
        intake.study_for(session, patient.id, str(case))
    queue.enqueue_pending(db_url)
    claimed = queue.claim(SETTINGS, "slow", db_url)
    taken: list[queue.Claim] = []

    def folder_then_taken_over(case_ref, seed):
        expire_lease(db_url, claimed.study_id)
        taken.append(queue.claim(SETTINGS, "fast", db_url))
        return cases.case_folder(case_ref, seed)

    monkeypatch.setattr(batch, "case_folder", folder_then_taken_over)
    row = batch.diagnose_claimed(claimed, pipeline.DiagnoseOptions(url=db_url), SETTINGS)
    assert row["status"] == "lost" and "fast took it over" in row["error"]
    assert findings_per_study(db_url) == {}
    reports = tmp_path / "home" / "reports" / f"patient-{patient.id}"
    assert reports.is_dir() and not list(reports.iterdir())  # the report was built there, then removed
    assert study(db_url, claimed.study_id).claim_token == taken[0].token
