"""The report folder of each finding (report.json, report.html, figures), stored rather than guessed.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

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
)


def upgrade() -> None:
    """Add findings.report_dir; existing findings get the folder their segmentation was written to."""
    with op.batch_alter_table("findings") as batch:
        batch.add_column(sa.Column("report_dir", sa.String(1000), nullable=True))
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(findings.c.id, findings.c.segmentation_path).where(findings.c.segmentation_path.is_not(None))
    )
    for finding_id, segmentation in rows.all():
        conn.execute(
            findings.update().where(findings.c.id == finding_id).values(report_dir=str(Path(segmentation).parent))
        )


def downgrade() -> None:
    """Drop the column."""
    with op.batch_alter_table("findings") as batch:
        batch.drop_column("report_dir")
