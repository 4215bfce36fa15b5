"""Alembic environment: runs on the connection neurotriage hands over, inside its transaction.

`neurotriage db init|upgrade` pass an open connection through `config.attributes["connection"]`
so migrating and loading the knowledge base are one transaction. Developers running the alembic
CLI (`alembic -c src/neurotriage/db/migrations/alembic.ini revision --autogenerate -m ...`)
get an engine for the configured database URL instead.
"""

from alembic import context
from sqlalchemy import create_engine

import neurotriage.web.models  # noqa: F401  (the web app's tables live in the same schema)
from neurotriage.clinical.models import Base
from neurotriage.config import load_settings


def run(connection) -> None:
    """Run pending migrations on `connection`."""
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("neurotriage migrations run online only")
given = context.config.attributes.get("connection")
if given is not None:
    run(given)
else:
    with create_engine(load_settings().database_url).connect() as conn:
        run(conn)
        conn.commit()
