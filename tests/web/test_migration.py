"""The web migrations: 0003 creates exactly the web tables the ORM models describe and downgrades
cleanly; 0004 gives existing findings the report folder their segmentation was written to; 0008 keeps
existing jobs, with no study; 0009 keeps patients and everything that hangs on them, confirmed and without MRN."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, Table, inspect, select, text
from sqlalchemy.exc import IntegrityError

import neurotriage.web.models  # noqa: F401  (registers the web tables on the shared metadata)
from neurotriage.clinical import db
from neurotriage.clinical.models import Base

WEB_TABLES = {"users", "jobs", "reviews", "audit_events", "patient_access"}
NOW = "2026-01-01 00:00:00"


def test_web_migration_matches_models_and_downgrades(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    db.migrate_and_load(url, create=True)
    with db.connection(url) as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        command.downgrade(db.alembic_config(conn), "0002")
        assert not WEB_TABLES & set(inspect(conn).get_table_names())
        command.upgrade(db.alembic_config(conn), "head")
        assert set(inspect(conn).get_table_names()) >= WEB_TABLES


def old_database(tmp_path, revision: str, *rows: str) -> str:
    """A SQLite database migrated to `revision` holding patient 1 and the rows the given INSERTs add."""
    url = f"sqlite:///{tmp_path / f'at-{revision}.db'}"
    with db.connection(url, create=True) as conn:
        command.upgrade(db.alembic_config(conn), revision)
        conn.execute(text(f"INSERT INTO patients (id, name, sex, language_dominance, created_at) "
                          f"VALUES (1, 'Old', 'unknown', 'left', '{NOW}')"))  # fmt: skip
        for row in rows:
            conn.execute(text(row))
    return url


def test_report_dir_is_filled_in_for_existing_findings(tmp_path):
    findings = [
        f"INSERT INTO findings (id, study_id, segmentation_path, locate, model_id, created_at) "
        f"VALUES ({finding_id}, 1, {seg}, '{{}}', 'm', '{NOW}')"
        for finding_id, seg in ((1, "'/reports/p1/C/C_seg.nii.gz'"), (2, "NULL"))
    ]
    study = f"INSERT INTO studies (id, patient_id, case_ref, created_at) VALUES (1, 1, 'C', '{NOW}')"
    url = old_database(tmp_path, "0003", study, *findings)
    db.migrate_and_load(url, create=False)
    with db.connection(url) as conn:
        table = Table("findings", MetaData(), autoload_with=conn)
        rows = conn.execute(select(table.c.id, table.c.report_dir).order_by(table.c.id)).all()
    assert rows == [(1, "/reports/p1/C"), (2, None)]


def test_existing_jobs_keep_their_rows_and_have_no_study(tmp_path):
    job = (
        "INSERT INTO jobs (id, patient_id, status, upload_name, work_dir, stages, created_at, updated_at)"
        f" VALUES (7, 1, 'done', 'a.zip', '/w/7', '[]', '{NOW}', '{NOW}')"
    )
    url = old_database(tmp_path, "0007", job)
    db.migrate_and_load(url, create=False)
    with db.connection(url) as conn:
        table = Table("jobs", MetaData(), autoload_with=conn)
        assert conn.execute(select(table.c.id, table.c.status, table.c.study_id)).all() == [(7, "done", None)]


def test_existing_patients_are_confirmed_without_mrn_and_keep_their_studies(tmp_path):
    study = f"INSERT INTO studies (id, patient_id, case_ref, created_at) VALUES (1, 1, 'C', '{NOW}')"
    url = old_database(tmp_path, "0008", study)
    db.migrate_and_load(url, create=False)
    with db.connection(url) as conn:
        patients = Table("patients", MetaData(), autoload_with=conn)
        rows = conn.execute(select(patients.c.id, patients.c.mrn, patients.c.mrn_issuer, patients.c.confirmed)).all()
        assert rows == [(1, None, None, True)]
        assert conn.execute(text("SELECT count(*) FROM studies")).scalar() == 1
        command.downgrade(db.alembic_config(conn), "0008")
        assert "mrn" not in {c["name"] for c in inspect(conn).get_columns("patients")}
        assert conn.execute(text("SELECT count(*) FROM studies")).scalar() == 1


def _insert_user(name: str, role: str) -> str:
    return f"INSERT INTO users (username, password_hash, role, created_at) VALUES ('{name}', 'x', '{role}', '{NOW}')"


def test_roles_upgrade_keeps_users_records_and_gives_clinicians_todays_patients(tmp_path):
    job = (
        "INSERT INTO jobs (id, patient_id, user_id, status, upload_name, work_dir, stages, created_at, updated_at)"
        f" VALUES (7, 1, 1, 'done', 'a.zip', '/w/7', '[]', '{NOW}', '{NOW}')"
    )
    url = old_database(tmp_path, "0010", _insert_user("ada", "clinician"), _insert_user("root", "admin"), job)
    db.migrate_and_load(url, create=False)
    with db.connection(url) as conn:
        assert conn.execute(text("SELECT user_id FROM jobs")).scalar() == 1
        assert conn.execute(text("SELECT patient_id, user_id, kind FROM patient_access")).all() == [(1, 1, "team")]
        assert conn.execute(text("SELECT count(*) FROM users WHERE disabled")).scalar() == 0
        conn.execute(text(_insert_user("r", "read_only")))
        with pytest.raises(IntegrityError), conn.begin_nested():
            conn.execute(text(_insert_user("s", "superuser")))
        command.downgrade(db.alembic_config(conn), "0010")
        assert conn.execute(text("SELECT role FROM users WHERE username = 'r'")).scalar() == "clinician"
        assert conn.execute(text("SELECT user_id FROM jobs")).scalar() == 1
        with pytest.raises(IntegrityError), conn.begin_nested():
            conn.execute(text("UPDATE users SET role = 'read_only' WHERE id = 1"))


def test_existing_patients_get_their_folded_name_and_reviews_keep_theirs(tmp_path):
    url = old_database(tmp_path, "0011", "UPDATE patients SET name = 'ZOË Ångström' WHERE id = 1")
    db.migrate_and_load(url, create=False)
    with db.connection(url) as conn:
        assert conn.execute(text("SELECT name_folded FROM patients")).scalar() == "zoe angstrom"
        assert conn.execute(text("SELECT count(*) FROM crosschecks WHERE origin <> 'diagnosis'")).scalar() == 0
        command.downgrade(db.alembic_config(conn), "0011")
        assert "name_folded" not in {c["name"] for c in inspect(conn).get_columns("patients")}
