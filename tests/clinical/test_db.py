"""Schema, migrations and transactions, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import func, inspect, select, text

import neurotriage.web.models  # noqa: F401  (its tables are part of the migrated schema)
from neurotriage.clinical import db, knowledge
from neurotriage.clinical.bitsets import bit
from neurotriage.clinical.models import Base, BrainRegion, Patient, Symptom, SymptomRegionRule
from neurotriage.errors import UserError


def knowledge_counts(url: str) -> tuple[int, int, int]:
    with db.transaction(url) as session:
        return tuple(
            session.scalar(select(func.count()).select_from(m)) for m in (Symptom, SymptomRegionRule, BrainRegion)
        )


def test_init_creates_schema_and_knowledge_and_is_idempotent(fresh_url: str, cli) -> None:
    first = cli("db", "init")
    assert first.code == 0, first.err
    assert f"schema empty -> {db.head_revision()}" in first.out
    counts = knowledge_counts(fresh_url)
    assert counts == (len(knowledge.SYMPTOMS), sum(len(s.rules) for s in knowledge.SYMPTOMS), len(knowledge.REGIONS))
    again = cli("db", "init")
    assert again.code == 0 and f"schema at {db.head_revision()}" in again.out
    assert knowledge_counts(fresh_url) == counts


def test_migrations_match_the_models(migrated_url: str) -> None:
    with db.connection(migrated_url) as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_upgrade_migrates_in_place_keeping_data(db_url: str, cli) -> None:
    assert cli("patient", "add", "--name", "Kept Across Upgrade").code == 0
    result = cli("db", "upgrade")
    assert result.code == 0, result.err
    listed = cli("patient", "list", "--search", "Kept Across")
    assert "Kept Across Upgrade" in listed.out


def test_upgrade_from_first_revision_adds_provenance(fresh_url: str, cli) -> None:
    from alembic import command

    with db.connection(fresh_url, create=True) as conn:
        command.upgrade(db.alembic_config(conn), "0001")
    assert cli("db", "upgrade").code == 0
    with db.connection(fresh_url) as conn:
        assert "provenance" in {c["name"] for c in inspect(conn).get_columns("findings")}
        assert "last_error" in {c["name"] for c in inspect(conn).get_columns("studies")}
        assert db.current_revision(conn) == db.head_revision()


def test_init_is_one_transaction(fresh_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # A failure after the DDL must leave no table behind, on SQLite too (transactional DDL).
    def fail(_session):
        raise UserError("knowledge base broken")

    monkeypatch.setattr(db, "load_knowledge", fail)
    with pytest.raises(UserError, match="knowledge base broken"):
        db.migrate_and_load(fresh_url, create=True)
    with db.connection(fresh_url, create=True) as conn:
        assert inspect(conn).get_table_names() == []


def test_uninitialised_database_is_refused(fresh_url: str, cli) -> None:
    with db.connection(fresh_url, create=True):
        pass  # the database now exists, without any table
    for args in (("patient", "list"), ("db", "upgrade")):
        result = cli(*args)
        assert result.code == 2
        assert result.err.count("\n") == 1 and "not initialised: run `neurotriage db init`" in result.err


def test_database_at_unknown_revision_is_refused(fresh_url: str, cli) -> None:
    db.migrate_and_load(fresh_url, create=True)
    with db.connection(fresh_url) as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'ffff9999'"))
    for args in (("patient", "list"), ("db", "upgrade"), ("db", "init")):
        result = cli(*args)
        assert result.code == 2, args
        assert "schema revision 'ffff9999'" in result.err and result.err.count("\n") == 1


def test_failed_command_changes_nothing(db_url: str, cli) -> None:
    assert cli("patient", "add", "--name", "Only One").code == 0
    bad = cli("patient", "add", "--name", "Second", "--lat", "95", "--lon", "0")
    assert bad.code == 2 and "--lat: latitude '95' is outside -90..90" in bad.err
    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Patient)) == 1


def test_transaction_rolls_back_on_error(db_url: str) -> None:
    with pytest.raises(RuntimeError), db.transaction() as session:
        session.add(Patient(name="Rolled Back"))
        session.flush()
        raise RuntimeError("boom")
    with db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Patient)) == 0


def test_upgrade_to_expertise_bits_keeps_doctors_and_derives_their_bits(fresh_url: str, cli) -> None:
    from alembic import command

    with db.connection(fresh_url, create=True) as conn:
        command.upgrade(db.alembic_config(conn), "0005")
        conn.execute(
            text(
                "INSERT INTO hospitals (id, code, name, address, city, country, lat, lon, capabilities)"
                " VALUES (7, 'H7', 'Old', '', 'Leeds', '', 53.8, -1.5, '[]')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO doctors (id, name, hospital_id, specialty, expertise, accepting, wait_days)"
                " VALUES (41, 'Dr Kept', 7, 'neurosurgery', '[\"brainstem\", \"broca\"]', true, 3)"
            )
        )
    assert cli("db", "upgrade").code == 0
    with db.connection(fresh_url) as conn:
        row = conn.execute(text("SELECT id, hospital_id, wait_days, expertise_bits, lat, lat_band FROM doctors")).one()
        assert tuple(row) == (41, 7, 3, bit("brainstem") | bit("broca"), 53.8, 53)
        names = {i["name"] for i in inspect(conn).get_indexes("doctors")}
        assert {"ix_doctors_referral", "ix_doctors_hospital_id", "ix_doctors_specialty_accepting"} <= names
        conn.execute(text("DELETE FROM hospitals WHERE id = 7"))  # the foreign key still cascades
        assert conn.execute(text("SELECT count(*) FROM doctors")).scalar() == 0
