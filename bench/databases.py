"""Throw-away databases for tests and benchmarks: SQLite files, or schemas of one PostgreSQL database.

On PostgreSQL an "empty database" is a new schema selected through the connection's search_path:
creating and dropping schemas is fast, whole databases are not.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from neurotriage.clinical import db


class DatabaseFactory:
    """Creates empty databases on one backend (under `root` for SQLite) and drops them with `drop_all`."""

    def __init__(self, backend: str, root: Path, admin_url: str | None = None, prefix: str = "nt_test") -> None:
        self.backend, self.root, self.admin_url, self.prefix = backend, root, admin_url, prefix
        self.schemas: list[str] = []

    def _admin(self) -> Engine:
        return create_engine(self.admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})

    def create(self) -> str:
        """The URL of a new empty database."""
        name = f"{self.prefix}_{uuid.uuid4().hex[:12]}"
        if self.backend == "sqlite":
            return f"sqlite:///{self.root / (name + '.db')}"
        engine = self._admin()
        with engine.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{name}"'))
        engine.dispose()
        self.schemas.append(name)
        url = make_url(self.admin_url).update_query_dict({"options": f"-csearch_path={name}"})
        return url.render_as_string(hide_password=False)

    def drop_all(self) -> None:
        """Close every pooled connection, then drop every schema created here."""
        db.dispose_engines()
        if not self.schemas:
            return
        engine = self._admin()
        with engine.connect() as conn:
            for name in self.schemas:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        engine.dispose()
        self.schemas.clear()


@contextmanager
def scratch_database(backend: str, root: Path, admin_url: str | None = None) -> Iterator[str]:
    """The URL of one new empty database, dropped when the block ends."""
    factory = DatabaseFactory(backend, root, admin_url, prefix="nt_bench")
    try:
        yield factory.create()
    finally:
        factory.drop_all()
