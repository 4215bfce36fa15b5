"""The clinical database fixtures, so the queue tests run on SQLite and on PostgreSQL alike."""

from ..clinical.conftest import cli, db_factory, db_url, migrated_url, own_cluster, postgres_url  # noqa: F401
