"""doctors.expertise_bits: the expertise list as an integer bit set the database derives itself (a stored
generated column), so the referral search tests expertise with a bit test instead of JSON containment.
ix_doctors_referral covers it; on PostgreSQL it and ix_hospitals_lat_lon also carry the ids (and the
hospitals' capabilities), so a search box is read from the indexes alone.

SQLite cannot add a stored generated column to a table, so there the doctors table is rebuilt (nothing
refers to it; its rows keep their ids).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

from neurotriage.clinical.bitsets import bits_sql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# The names behind the bits, in bit order, as of this revision (a later change of the list needs its own
# revision that rewrites the expression).
NAMES = (
    *("frontal_lobe", "temporal_lobe", "parietal_lobe", "occipital_lobe", "insula", "cerebellum", "brainstem"),
    *("thalamus", "corpus_callosum", "internal_capsule", "basal_ganglia", "primary_motor", "primary_somatosensory"),
    *("broca", "wernicke", "primary_visual", "optic_radiation", "corticospinal_tract", "medial_temporal"),
)
SPECIALTIES = ("neurosurgery", "neuro-oncology", "radiation oncology", "neurology", "neuroradiology")
OLD_COLUMNS = ("id", "name", "hospital_id", "specialty", "expertise", "accepting", "wait_days")
REFERRAL = ["hospital_id", "accepting", "specialty", "wait_days", "name", "expertise"]


def _bits_column() -> sa.Column:
    return sa.Column("expertise_bits", sa.Integer(), sa.Computed(bits_sql("expertise", NAMES), persisted=True))


def _rebuild_sqlite_doctors() -> None:
    """The doctors table again, with the generated column (SQLite's 'make a new table, copy, rename')."""
    listed = ", ".join(f"'{s}'" for s in SPECIALTIES)
    op.create_table(
        "doctors_rebuilt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("hospital_id", sa.Integer(), nullable=False),
        sa.Column("specialty", sa.String(32), nullable=False),
        sa.Column("expertise", sa.JSON(), nullable=False),
        sa.Column("accepting", sa.Boolean(), nullable=False),
        sa.Column("wait_days", sa.Integer(), nullable=False),
        _bits_column(),
        sa.PrimaryKeyConstraint("id", name="pk_doctors"),
        sa.CheckConstraint(f"specialty IN ({listed})", name="ck_doctors_specialty"),
        sa.ForeignKeyConstraint(
            ["hospital_id"], ["hospitals.id"], name="fk_doctors_hospital_id_hospitals", ondelete="CASCADE"
        ),
    )
    columns = ", ".join(OLD_COLUMNS)
    op.execute(f"INSERT INTO doctors_rebuilt ({columns}) SELECT {columns} FROM doctors")
    op.drop_table("doctors")
    op.rename_table("doctors_rebuilt", "doctors")
    op.create_index("ix_doctors_hospital_id", "doctors", ["hospital_id"])
    op.create_index("ix_doctors_specialty_accepting", "doctors", ["specialty", "accepting"])
    op.create_index("ix_doctors_referral", "doctors", [*REFERRAL, "expertise_bits"])


def _upgrade_postgresql() -> None:
    op.drop_index("ix_doctors_referral", table_name="doctors")
    op.add_column("doctors", _bits_column())
    op.create_index("ix_doctors_referral", "doctors", [*REFERRAL, "expertise_bits"], postgresql_include=["id"])
    op.drop_index("ix_hospitals_lat_lon", table_name="hospitals")
    op.create_index("ix_hospitals_lat_lon", "hospitals", ["lat", "lon"], postgresql_include=["id", "capabilities"])


def upgrade() -> None:
    """Add the generated doctors.expertise_bits, the indexes that cover it, and the birth-date index."""
    if op.get_bind().dialect.name == "postgresql":
        _upgrade_postgresql()
    else:
        _rebuild_sqlite_doctors()
    op.create_index("ix_patients_birth_date", "patients", ["birth_date"])


def downgrade() -> None:
    """Drop the column and the birth-date index; the indexes of revision 0005."""
    op.drop_index("ix_patients_birth_date", table_name="patients")
    op.drop_index("ix_doctors_referral", table_name="doctors")
    with op.batch_alter_table("doctors") as batch:
        batch.drop_column("expertise_bits")
    op.create_index("ix_doctors_referral", "doctors", REFERRAL)
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_hospitals_lat_lon", table_name="hospitals")
        op.create_index("ix_hospitals_lat_lon", "hospitals", ["lat", "lon"])
