"""Initial schema: patients, studies, knowledge base, hospitals, doctors, findings, decisions.

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _id() -> sa.Column:
    return sa.Column("id", sa.Integer(), nullable=False)


def _created(name: str = "created_at") -> sa.Column:
    return sa.Column(name, sa.DateTime(), nullable=False)


def _pk(table: str) -> sa.PrimaryKeyConstraint:
    return sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}"))


def _fk(table: str, column: str, target: str, ondelete: str | None = None) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"), ondelete=ondelete
    )


def _check(table: str, name: str, column: str, values: tuple[str, ...]) -> sa.CheckConstraint:
    listed = ", ".join(f"'{v}'" for v in values)
    return sa.CheckConstraint(f"{column} IN ({listed})", name=op.f(f"ck_{table}_{name}"))


def _index(table: str, *columns: str, name: str | None = None) -> None:
    op.create_index(name or op.f(f"ix_{table}_{columns[0]}"), table, list(columns), unique=False)


def upgrade() -> None:
    """Create every table of the first schema."""
    op.create_table(
        "brain_regions",
        _id(),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("snomed_code", sa.String(20), nullable=True),
        _check("brain_regions", "kind", "kind", ("lobe", "eloquent")),
        _pk("brain_regions"),
        sa.UniqueConstraint("name", name=op.f("uq_brain_regions_name")),
    )
    op.create_table(
        "hospitals",
        _id(),
        sa.Column("code", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("address", sa.String(300), nullable=False),
        sa.Column("city", sa.String(120), nullable=False),
        sa.Column("country", sa.String(120), nullable=False),
        sa.Column("lat", sa.Double(), nullable=False),
        sa.Column("lon", sa.Double(), nullable=False),
        sa.Column("capabilities", sa.JSON(), nullable=False),
        _pk("hospitals"),
        sa.UniqueConstraint("code", name=op.f("uq_hospitals_code")),
    )
    _index("hospitals", "lat", "lon", name="ix_hospitals_lat_lon")
    op.create_table(
        "patients",
        _id(),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("sex", sa.String(16), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=True),
        sa.Column("city", sa.String(120), nullable=True),
        sa.Column("lat", sa.Double(), nullable=True),
        sa.Column("lon", sa.Double(), nullable=True),
        sa.Column("language_dominance", sa.String(8), nullable=False),
        _created(),
        _check("patients", "dominance", "language_dominance", ("left", "right")),
        _check("patients", "sex", "sex", ("female", "male", "other", "unknown")),
        _pk("patients"),
    )
    _index("patients", "name")
    op.create_table(
        "symptoms",
        _id(),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("snomed_code", sa.String(20), nullable=True),
        sa.Column("needs_cortex", sa.Boolean(), nullable=False),
        _pk("symptoms"),
        sa.UniqueConstraint("code", name=op.f("uq_symptoms_code")),
    )
    _index("symptoms", "snomed_code")
    op.create_table(
        "doctors",
        _id(),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("hospital_id", sa.Integer(), nullable=False),
        sa.Column("specialty", sa.String(32), nullable=False),
        sa.Column("expertise", sa.JSON(), nullable=False),
        sa.Column("accepting", sa.Boolean(), nullable=False),
        sa.Column("wait_days", sa.Integer(), nullable=False),
        _check(
            "doctors",
            "specialty",
            "specialty",
            ("neurosurgery", "neuro-oncology", "radiation oncology", "neurology", "neuroradiology"),
        ),
        _fk("doctors", "hospital_id", "hospitals", "CASCADE"),
        _pk("doctors"),
    )
    _index("doctors", "hospital_id")
    _index("doctors", "specialty", "accepting", name="ix_doctors_specialty_accepting")
    op.create_table(
        "patient_symptoms",
        _id(),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("symptom_id", sa.Integer(), nullable=False),
        sa.Column("side", sa.String(16), nullable=True),
        sa.Column("onset_date", sa.Date(), nullable=True),
        sa.Column("severity", sa.String(16), nullable=True),
        _created("recorded_at"),
        _check("patient_symptoms", "severity", "severity", ("mild", "moderate", "severe")),
        _check("patient_symptoms", "side", "side", ("left", "right", "bilateral")),
        _fk("patient_symptoms", "patient_id", "patients", "CASCADE"),
        _fk("patient_symptoms", "symptom_id", "symptoms"),
        _pk("patient_symptoms"),
    )
    _index("patient_symptoms", "patient_id")
    op.create_table(
        "studies",
        _id(),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("case_ref", sa.String(500), nullable=False),
        sa.Column("synthetic_seed", sa.Integer(), nullable=True),
        sa.Column("study_date", sa.Date(), nullable=True),
        _created(),
        _fk("studies", "patient_id", "patients", "CASCADE"),
        _pk("studies"),
        sa.UniqueConstraint("patient_id", "case_ref", name=op.f("uq_studies_patient_id")),
    )
    _index("studies", "patient_id")
    op.create_table(
        "symptom_region_rules",
        _id(),
        sa.Column("symptom_id", sa.Integer(), nullable=False),
        sa.Column("region_id", sa.Integer(), nullable=True),
        sa.Column("laterality", sa.String(16), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        _check(
            "symptom_region_rules",
            "laterality",
            "laterality",
            ("contralateral", "ipsilateral", "dominant", "non_dominant", "either", "non_localising"),
        ),
        _fk("symptom_region_rules", "region_id", "brain_regions"),
        _fk("symptom_region_rules", "symptom_id", "symptoms", "CASCADE"),
        _pk("symptom_region_rules"),
    )
    _index("symptom_region_rules", "symptom_id")
    op.create_table(
        "findings",
        _id(),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("segmentation_path", sa.String(1000), nullable=True),
        sa.Column("locate", sa.JSON(), nullable=False),
        sa.Column("model_id", sa.String(200), nullable=False),
        _created(),
        _fk("findings", "study_id", "studies", "CASCADE"),
        _pk("findings"),
    )
    _index("findings", "study_id")
    op.create_table(
        "crosschecks",
        _id(),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("finding_id", sa.Integer(), nullable=True),
        sa.Column("verdict", sa.String(64), nullable=False),
        sa.Column("score", sa.Double(), nullable=True),
        sa.Column("needs_review", sa.Boolean(), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        _created(),
        _fk("crosschecks", "finding_id", "findings", "SET NULL"),
        _fk("crosschecks", "patient_id", "patients", "CASCADE"),
        _pk("crosschecks"),
    )
    _index("crosschecks", "patient_id")
    op.create_table(
        "referrals",
        _id(),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("finding_id", sa.Integer(), nullable=True),
        sa.Column("crosscheck_id", sa.Integer(), nullable=True),
        sa.Column("basis", sa.String(16), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        _created(),
        _fk("referrals", "crosscheck_id", "crosschecks", "SET NULL"),
        _fk("referrals", "finding_id", "findings", "SET NULL"),
        _fk("referrals", "patient_id", "patients", "CASCADE"),
        _pk("referrals"),
    )
    _index("referrals", "patient_id")


def downgrade() -> None:
    """Drop every table, children first."""
    for table in (
        "referrals",
        "crosschecks",
        "findings",
        "symptom_region_rules",
        "studies",
        "patient_symptoms",
        "doctors",
        "symptoms",
        "patients",
        "hospitals",
        "brain_regions",
    ):
        op.drop_table(table)
