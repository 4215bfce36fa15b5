"""jobs.study_id: the study an upload job queued (diagnosis/queue.py), so web jobs run on the study
queue; jobs from before this revision have none.

On SQLite the jobs table is rebuilt to add the foreign key (no table refers to jobs; its rows keep their ids).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

FK = "fk_jobs_study_id_studies"


def upgrade() -> None:
    """Add the nullable, indexed jobs.study_id, set to NULL when its study is deleted."""
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("study_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(FK, "studies", ["study_id"], ["id"], ondelete="SET NULL")
    op.create_index("ix_jobs_study_id", "jobs", ["study_id"])


def downgrade() -> None:
    """Drop the index and the column with its foreign key."""
    op.drop_index("ix_jobs_study_id", table_name="jobs")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_constraint(FK, type_="foreignkey")
        batch.drop_column("study_id")
