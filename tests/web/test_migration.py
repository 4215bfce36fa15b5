"""Migration 0003 creates exactly the web tables the ORM models describe, and downgrades cleanly."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

import neurotriage.web.models  # noqa: F401  (registers the web tables on the shared metadata)
from neurotriage.clinical import db
from neurotriage.clinical.models import Base

WEB_TABLES = {"users", "jobs", "reviews", "audit_events"}


def test_web_migration_matches_models_and_downgrades(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    db.migrate_and_load(url, create=True)
    with db.connection(url) as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        command.downgrade(db.alembic_config(conn), "0002")
        assert not WEB_TABLES & set(inspect(conn).get_table_names())
        command.upgrade(db.alembic_config(conn), "head")
        assert set(inspect(conn).get_table_names()) >= WEB_TABLES
