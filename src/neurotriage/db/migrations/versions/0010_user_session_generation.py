"""users.session_generation: signing out (or a password change) increments it, and a session cookie
carrying an older generation is refused, so every copy of the cookie ends with it.

Plain ALTER TABLE on SQLite too: rebuilding users in batch mode would drop the table, and with it,
through ON DELETE SET NULL, the user of every job, review and audit event.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-09
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add session_generation, 0 for every existing user."""
    op.add_column("users", sa.Column("session_generation", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    """Drop the column."""
    op.drop_column("users", "session_generation")
