"""Web app tables: users, background jobs, clinician reviews and the audit log.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _pk(table: str) -> sa.PrimaryKeyConstraint:
    return sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}"))


def _fk(table: str, column: str, target: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"), ondelete=ondelete
    )


def _check(table: str, column: str, values: tuple[str, ...]) -> sa.CheckConstraint:
    listed = ", ".join(f"'{v}'" for v in values)
    return sa.CheckConstraint(f"{column} IN ({listed})", name=op.f(f"ck_{table}_{column}"))


def _id() -> sa.Column:
    return sa.Column("id", sa.Integer(), nullable=False)


def _user(table: str) -> list:
    return [sa.Column("user_id", sa.Integer(), nullable=True), _fk(table, "user_id", "users", "SET NULL")]


def upgrade() -> None:
    """Create the four web tables."""
    op.create_table(
        "users",
        _id(),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.String(300), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        _check("users", "role", ("clinician", "admin")),
        _pk("users"),
        sa.UniqueConstraint("username", name=op.f("uq_users_username")),
    )
    op.create_table(
        "jobs",
        _id(),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        *_user("jobs"),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("upload_name", sa.String(300), nullable=False),
        sa.Column("work_dir", sa.String(1000), nullable=False),
        sa.Column("stages", sa.JSON(), nullable=False),
        sa.Column("finding_id", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        _check("jobs", "status", ("queued", "running", "done", "failed")),
        _fk("jobs", "patient_id", "patients", "CASCADE"),
        _fk("jobs", "finding_id", "findings", "SET NULL"),
        _pk("jobs"),
    )
    op.create_index(op.f("ix_jobs_patient_id"), "jobs", ["patient_id"])
    op.create_table(
        "reviews",
        _id(),
        sa.Column("finding_id", sa.Integer(), nullable=False),
        *_user("reviews"),
        sa.Column("location_decision", sa.String(16), nullable=False),
        sa.Column("location_override", sa.String(300), nullable=True),
        sa.Column("verdict_decision", sa.String(16), nullable=False),
        sa.Column("verdict_override", sa.String(64), nullable=True),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        _check("reviews", "location_decision", ("confirm", "override")),
        _check("reviews", "verdict_decision", ("confirm", "override")),
        _fk("reviews", "finding_id", "findings", "CASCADE"),
        _pk("reviews"),
    )
    op.create_index(op.f("ix_reviews_finding_id"), "reviews", ["finding_id"])
    op.create_table(
        "audit_events",
        _id(),
        sa.Column("at", sa.DateTime(), nullable=False),
        *_user("audit_events"),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        _pk("audit_events"),
    )
    op.create_index(op.f("ix_audit_events_at"), "audit_events", ["at"])


def downgrade() -> None:
    """Drop the four web tables."""
    for table in ("audit_events", "reviews", "jobs", "users"):
        op.drop_table(table)
