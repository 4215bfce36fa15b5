"""An index covering every doctor column the referral search reads (hospital, acceptance, specialty,
wait, name, expertise), so the doctors of a search box are read from the index alone. On PostgreSQL
doctors.expertise becomes jsonb first: a json column cannot be part of a btree index.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

COLUMNS = ["hospital_id", "accepting", "specialty", "wait_days", "name", "expertise"]


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    """jsonb expertise on PostgreSQL, then the covering index."""
    if _postgresql():
        op.alter_column("doctors", "expertise", type_=JSONB(), postgresql_using="expertise::jsonb")
    op.create_index("ix_doctors_referral", "doctors", COLUMNS)


def downgrade() -> None:
    """Drop the index; json expertise again on PostgreSQL."""
    op.drop_index("ix_doctors_referral", table_name="doctors")
    if _postgresql():
        op.alter_column("doctors", "expertise", type_=sa.JSON(), postgresql_using="expertise::json")
