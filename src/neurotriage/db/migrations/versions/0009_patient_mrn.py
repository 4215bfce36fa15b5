"""patients.mrn and mrn_issuer (medical record number and its issuer, DICOM PatientID and
IssuerOfPatientID), unique per issuer where set, and patients.confirmed (existing patients: confirmed).

Plain ALTER TABLE on SQLite too: rebuilding patients in batch mode would drop the table, and with it,
through ON DELETE CASCADE, every study, symptom and decision of its patients.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

# Partial unique indexes: (name, columns, condition).
INDEXES = (
    ("uq_patients_mrn", ["mrn", "mrn_issuer"], "mrn IS NOT NULL"),
    ("uq_patients_mrn_no_issuer", ["mrn"], "mrn IS NOT NULL AND mrn_issuer IS NULL"),
)


def upgrade() -> None:
    """Add the nullable MRN columns, confirmed (true for every existing patient) and the MRN indexes."""
    op.add_column("patients", sa.Column("mrn", sa.String(64), nullable=True))
    op.add_column("patients", sa.Column("mrn_issuer", sa.String(64), nullable=True))
    op.add_column("patients", sa.Column("confirmed", sa.Boolean(), server_default=sa.true(), nullable=False))
    for name, columns, condition in INDEXES:
        where = sa.text(condition)
        op.create_index(name, "patients", columns, unique=True, sqlite_where=where, postgresql_where=where)


def downgrade() -> None:
    """Drop the indexes and the columns."""
    for name, _, _ in INDEXES:
        op.drop_index(name, table_name="patients")
    for column in ("confirmed", "mrn_issuer", "mrn"):
        op.drop_column("patients", column)
