"""Clinical review that takes effect, and patient search:

- reviews.location_hemisphere and reviews.location_regions: a structured location override;
- crosschecks and referrals .origin (diagnosis | review | rerun) and .requested_by: which stored
  decisions a clinician's override or re-run produced, and who asked;
- patients.clinical_changed_at: when symptoms or language dominance last changed, so a cross-check
  made before it is stale;
- patients.name_folded: the name in lower case without accents, for searching ("ZOË" finds "Zoë");
  filled in here for existing patients;
- jobs.upload_sha256: the uploaded file's digest, so the same upload twice is flagged.

Plain ALTER TABLE on SQLite: rebuilding these tables in batch mode would drop them and cascade.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

from neurotriage.folding import fold

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

BATCH = 1000


def _fill_folded_names() -> None:
    """name_folded for every existing patient, a batch at a time."""
    conn = op.get_bind()
    patients = sa.table("patients", sa.column("id", sa.Integer), sa.column("name", sa.String), sa.column("name_folded"))
    last = 0
    while rows := conn.execute(
        sa.select(patients.c.id, patients.c.name).where(patients.c.id > last).order_by(patients.c.id).limit(BATCH)
    ).all():
        conn.execute(
            sa.update(patients).where(patients.c.id == sa.bindparam("pid")).values(name_folded=sa.bindparam("folded")),
            [{"pid": pid, "folded": fold(name)} for pid, name in rows],
        )
        last = rows[-1][0]


def upgrade() -> None:
    """Add the columns and their indexes; fold existing names."""
    op.add_column("reviews", sa.Column("location_hemisphere", sa.String(16), nullable=True))
    op.add_column("reviews", sa.Column("location_regions", sa.JSON(), nullable=True))
    for table in ("crosschecks", "referrals"):
        op.add_column(table, sa.Column("origin", sa.String(16), server_default="diagnosis", nullable=False))
        op.add_column(table, sa.Column("requested_by", sa.String(64), nullable=True))
    op.add_column("patients", sa.Column("clinical_changed_at", sa.DateTime(), nullable=True))
    op.add_column("patients", sa.Column("name_folded", sa.String(200), server_default="", nullable=False))
    _fill_folded_names()
    op.create_index(op.f("ix_patients_name_folded"), "patients", ["name_folded"])
    op.add_column("jobs", sa.Column("upload_sha256", sa.String(64), nullable=True))
    op.create_index(op.f("ix_jobs_upload_sha256"), "jobs", ["upload_sha256"])


def downgrade() -> None:
    """Drop what upgrade added."""
    op.drop_index(op.f("ix_jobs_upload_sha256"), table_name="jobs")
    op.drop_column("jobs", "upload_sha256")
    op.drop_index(op.f("ix_patients_name_folded"), table_name="patients")
    op.drop_column("patients", "name_folded")
    op.drop_column("patients", "clinical_changed_at")
    for table in ("referrals", "crosschecks"):
        op.drop_column(table, "requested_by")
        op.drop_column(table, "origin")
    op.drop_column("reviews", "location_regions")
    op.drop_column("reviews", "location_hemisphere")
