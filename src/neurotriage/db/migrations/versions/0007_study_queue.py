"""The diagnosis queue on the studies table: when a study was queued, its attempts, the claim of the
worker diagnosing it (token, worker, lease) and when it was parked after failing too often.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the queue columns (existing studies: not queued, no attempts) and the index claims read."""
    with op.batch_alter_table("studies") as batch:
        batch.add_column(sa.Column("queued_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
        batch.add_column(sa.Column("claim_token", sa.String(36), nullable=True))
        batch.add_column(sa.Column("claimed_by", sa.String(200), nullable=True))
        batch.add_column(sa.Column("lease_until", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("parked_at", sa.DateTime(), nullable=True))
    op.create_index("ix_studies_queued_at", "studies", ["queued_at"])


def downgrade() -> None:
    """Drop the index and the columns."""
    op.drop_index("ix_studies_queued_at", table_name="studies")
    with op.batch_alter_table("studies") as batch:
        for column in ("parked_at", "lease_until", "claimed_by", "claim_token", "attempts", "queued_at"):
            batch.drop_column(column)
