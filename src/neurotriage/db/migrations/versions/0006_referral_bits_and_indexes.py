"""What the referral search reads, on the doctors' rows and in one index:

- doctors.expertise_bits: the expertise list as an integer bit set the database derives itself (a
  stored generated column), so expertise is a bit test instead of JSON containment;
- doctors.lat, lon, lat_band (the whole degree of latitude) and capability_bits: copies of their
  hospital's location and capabilities (as bits), kept by triggers on both tables;
- ix_doctors_referral on (lat_band, accepting, specialty, lon, ...) covering every column the search
  reads, so a search box is a few short range scans of one index (one per degree of latitude and
  fitting specialty) instead of an index probe per hospital in the box.

Patients also get an index on birth_date, which the CSV import's duplicate check looks up.

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

# The names behind the bits, in bit order, as of this revision (a later change of a list needs its own
# revision that rewrites the expressions).
REGIONS = (
    *("frontal_lobe", "temporal_lobe", "parietal_lobe", "occipital_lobe", "insula", "cerebellum", "brainstem"),
    *("thalamus", "corpus_callosum", "internal_capsule", "basal_ganglia", "primary_motor", "primary_somatosensory"),
    *("broca", "wernicke", "primary_visual", "optic_radiation", "corticospinal_tract", "medial_temporal"),
)
CAPABILITIES = ("intraoperative_mri", "awake_craniotomy", "stereotactic_radiosurgery", "proton_therapy", "neuro_icu")
SPECIALTIES = ("neurosurgery", "neuro-oncology", "radiation oncology", "neurology", "neuroradiology")
OLD_COLUMNS = ("id", "name", "hospital_id", "specialty", "expertise", "accepting", "wait_days")
OLD_REFERRAL = ["hospital_id", "accepting", "specialty", "wait_days", "name", "expertise"]
REFERRAL = ["lat_band", "accepting", "specialty", "lon", "lat", "wait_days", "expertise_bits", "capability_bits"]
REFERRAL += ["hospital_id", "id", "name", "expertise"]
SITE = ("lat", "lon", "lat_band", "capability_bits")
# floor(lat) as an integer: SQLite's CAST truncates (so shift to positive first), PostgreSQL's rounds.
BAND = {"sqlite": "CAST({0} + 90 AS INTEGER) - 90", "postgresql": "CAST(floor({0}) AS INTEGER)"}


def _site_of(hospital: str) -> str:
    """The site columns' values from a row of hospitals named `hospital`."""
    band = BAND[op.get_bind().dialect.name].format(f"{hospital}.lat")
    return f"{hospital}.lat, {hospital}.lon, {band}, {bits_sql(f'{hospital}.capabilities', CAPABILITIES)}"


def _new_columns() -> list[sa.Column]:
    bits = sa.Computed(bits_sql("expertise", REGIONS), persisted=True)
    return [
        sa.Column("expertise_bits", sa.Integer(), bits),
        sa.Column("lat", sa.Double(), nullable=True),
        sa.Column("lon", sa.Double(), nullable=True),
        sa.Column("lat_band", sa.Integer(), nullable=True),
        sa.Column("capability_bits", sa.Integer(), nullable=True),
    ]


def _rebuild_sqlite_doctors() -> None:
    """The doctors table again, with the new columns (SQLite's 'make a new table, copy, rename')."""
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
        *_new_columns(),
        sa.PrimaryKeyConstraint("id", name="pk_doctors"),
        sa.CheckConstraint(f"specialty IN ({listed})", name="ck_doctors_specialty"),
        sa.ForeignKeyConstraint(
            ["hospital_id"], ["hospitals.id"], name="fk_doctors_hospital_id_hospitals", ondelete="CASCADE"
        ),
    )
    old = ", ".join(OLD_COLUMNS)
    op.execute(
        f"INSERT INTO doctors_rebuilt ({old}, {', '.join(SITE)})"
        f" SELECT {', '.join(f'd.{c}' for c in OLD_COLUMNS)}, {_site_of('h')}"
        " FROM doctors AS d JOIN hospitals AS h ON h.id = d.hospital_id"
    )
    op.drop_table("doctors")
    op.rename_table("doctors_rebuilt", "doctors")
    op.create_index("ix_doctors_hospital_id", "doctors", ["hospital_id"])
    op.create_index("ix_doctors_specialty_accepting", "doctors", ["specialty", "accepting"])
    op.create_index("ix_doctors_referral", "doctors", REFERRAL)
    _sqlite_triggers()


def _sqlite_triggers() -> None:
    """SQLite's triggers cannot change the row being written, so they update it right after."""
    from_hospital = f"({', '.join(SITE)}) = (SELECT {_site_of('h')} FROM hospitals AS h WHERE h.id = NEW.hospital_id)"
    for name, event in (("doctors_site_on_insert", "INSERT"), ("doctors_site_on_move", "UPDATE OF hospital_id")):
        op.execute(
            f"CREATE TRIGGER {name} AFTER {event} ON doctors"
            f" BEGIN UPDATE doctors SET {from_hospital} WHERE id = NEW.id; END"
        )
    op.execute(
        "CREATE TRIGGER hospitals_site_on_update AFTER UPDATE OF lat, lon, capabilities ON hospitals"
        f" BEGIN UPDATE doctors SET ({', '.join(SITE)}) = (SELECT {_site_of('NEW')}) WHERE hospital_id = NEW.id; END"
    )


def _upgrade_postgresql() -> None:
    op.drop_index("ix_doctors_referral", table_name="doctors")
    for column in _new_columns():
        op.add_column("doctors", column)
    op.execute(f"UPDATE doctors AS d SET ({', '.join(SITE)}) = (SELECT {_site_of('h')}) FROM hospitals AS h"
               " WHERE h.id = d.hospital_id")  # fmt: skip
    op.execute(
        "CREATE FUNCTION doctors_site() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        f" SELECT {_site_of('h')} INTO NEW.lat, NEW.lon, NEW.lat_band, NEW.capability_bits"
        " FROM hospitals AS h WHERE h.id = NEW.hospital_id; RETURN NEW; END $$"
    )
    op.execute(
        "CREATE TRIGGER doctors_site BEFORE INSERT OR UPDATE OF hospital_id ON doctors"
        " FOR EACH ROW EXECUTE FUNCTION doctors_site()"
    )
    op.execute(
        "CREATE FUNCTION hospitals_site() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        f" UPDATE doctors SET ({', '.join(SITE)}) = (SELECT {_site_of('NEW')}) WHERE hospital_id = NEW.id;"
        " RETURN NULL; END $$"
    )
    op.execute(
        "CREATE TRIGGER hospitals_site AFTER UPDATE OF lat, lon, capabilities ON hospitals"
        " FOR EACH ROW EXECUTE FUNCTION hospitals_site()"
    )
    op.create_index("ix_doctors_referral", "doctors", REFERRAL)


def upgrade() -> None:
    """The new doctors columns, their triggers and index; the birth-date index."""
    if op.get_bind().dialect.name == "postgresql":
        _upgrade_postgresql()
    else:
        _rebuild_sqlite_doctors()
    op.create_index("ix_patients_birth_date", "patients", ["birth_date"])


def downgrade() -> None:
    """Drop the triggers, the new columns and indexes; the referral index of revision 0005."""
    op.drop_index("ix_patients_birth_date", table_name="patients")
    op.drop_index("ix_doctors_referral", table_name="doctors")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER hospitals_site ON hospitals")
        op.execute("DROP TRIGGER doctors_site ON doctors")
        op.execute("DROP FUNCTION hospitals_site()")
        op.execute("DROP FUNCTION doctors_site()")
    else:
        for name in ("hospitals_site_on_update", "doctors_site_on_move", "doctors_site_on_insert"):
            op.execute(f"DROP TRIGGER {name}")
    with op.batch_alter_table("doctors") as batch:
        for column in ("capability_bits", "lat_band", "lon", "lat", "expertise_bits"):
            batch.drop_column(column)
    op.create_index("ix_doctors_referral", "doctors", OLD_REFERRAL)
