"""Each finding's report folder (stored rather than guessed) and its key, a UUID allocated before it is stored.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

import uuid
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

findings = sa.table(
    "findings",
    sa.column("id", sa.Integer),
    sa.column("segmentation_path", sa.String),
    sa.column("report_dir", sa.String),
    sa.column("key", sa.String),
)


def upgrade() -> None:
    """Add findings.report_dir and findings.key; existing findings get the folder their segmentation was
    written to and a fresh key."""
    with op.batch_alter_table("findings") as batch:
        batch.add_column(sa.Column("report_dir", sa.String(1000), nullable=True))
        batch.add_column(sa.Column("key", sa.String(36), nullable=True))
    conn = op.get_bind()
    rows = conn.execute(sa.select(findings.c.id, findings.c.segmentation_path))
    for finding_id, segmentation in rows.all():
        folder = str(Path(segmentation).parent) if segmentation else None
        values = {"report_dir": folder, "key": str(uuid.uuid4())}
        conn.execute(findings.update().where(findings.c.id == finding_id).values(**values))
    with op.batch_alter_table("findings") as batch:
        batch.alter_column("key", existing_type=sa.String(36), nullable=False)
        batch.create_unique_constraint("uq_findings_key", ["key"])


def downgrade() -> None:
    """Drop the columns."""
    with op.batch_alter_table("findings") as batch:
        batch.drop_constraint("uq_findings_key", type_="unique")
        batch.drop_column("key")
        batch.drop_column("report_dir")
