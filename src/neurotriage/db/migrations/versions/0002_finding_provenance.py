"""Provenance on findings (software, model, input checksums) and the last diagnosis error per study.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add findings.provenance and studies.last_error (both nullable: old rows have neither)."""
    with op.batch_alter_table("findings") as batch:
        batch.add_column(sa.Column("provenance", sa.JSON(), nullable=True))
    with op.batch_alter_table("studies") as batch:
        batch.add_column(sa.Column("last_error", sa.Text(), nullable=True))


def downgrade() -> None:
    """Drop the two columns."""
    with op.batch_alter_table("studies") as batch:
        batch.drop_column("last_error")
    with op.batch_alter_table("findings") as batch:
        batch.drop_column("provenance")
