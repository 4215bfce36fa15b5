"""Roles and care teams: a read_only role, users.disabled, patient_access (care-team membership and
break-glass grants), and audit_events.patient_id (so the audit log filters by patient).

Every existing clinician and read-only user joins the care team of every existing patient, so an
upgrade hides nothing anyone could see before; admins then narrow the teams.

SQLite cannot alter a CHECK constraint in place, and rebuilding users in batch mode would drop the
table and, through ON DELETE SET NULL, the user of every job, review and audit event. Widening the
role check loosens it without touching a row, so on SQLite the table's stored definition is edited
as SQLite's documentation describes for such changes (writable_schema, then a new schema_version).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

OLD_ROLES = "role IN ('clinician', 'admin')"
NEW_ROLES = "role IN ('clinician', 'admin', 'read_only')"


def _set_role_check(old: str, new: str) -> None:
    """Replace the users.role CHECK expression."""
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint(op.f("ck_users_role"), "users", type_="check")
        op.create_check_constraint(op.f("ck_users_role"), "users", new)
        return
    conn = op.get_bind()
    version = conn.exec_driver_sql("PRAGMA schema_version").scalar()
    conn.exec_driver_sql("PRAGMA writable_schema = ON")
    conn.exec_driver_sql(
        "UPDATE sqlite_master SET sql = replace(sql, ?, ?) WHERE type = 'table' AND name = 'users'", (old, new)
    )
    conn.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    conn.exec_driver_sql("PRAGMA writable_schema = OFF")


def upgrade() -> None:
    """Widen the roles, add users.disabled, patient_access with today's access, audit_events.patient_id."""
    _set_role_check(OLD_ROLES, NEW_ROLES)
    op.add_column("users", sa.Column("disabled", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_table(
        "patient_access",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("granted_by", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=True),
        sa.CheckConstraint("kind IN ('team', 'break_glass')", name=op.f("ck_patient_access_kind")),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_patient_access_patient_id_patients"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_patient_access_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patient_access")),
        sa.UniqueConstraint("patient_id", "user_id", "kind", name=op.f("uq_patient_access_patient_id")),
    )
    op.create_index(op.f("ix_patient_access_user_id"), "patient_access", ["user_id"])
    op.execute(
        "INSERT INTO patient_access (patient_id, user_id, kind, granted_by, created_at) "
        "SELECT patients.id, users.id, 'team', 'upgrade', CURRENT_TIMESTAMP FROM patients CROSS JOIN users "
        "WHERE users.role <> 'admin'"
    )
    op.add_column("audit_events", sa.Column("patient_id", sa.Integer(), nullable=True))
    op.create_index(op.f("ix_audit_events_patient_id"), "audit_events", ["patient_id"])


def downgrade() -> None:
    """Drop what upgrade added; read-only users become clinicians again."""
    op.drop_index(op.f("ix_audit_events_patient_id"), table_name="audit_events")
    op.drop_column("audit_events", "patient_id")
    op.drop_index(op.f("ix_patient_access_user_id"), table_name="patient_access")
    op.drop_table("patient_access")
    op.drop_column("users", "disabled")
    op.execute("UPDATE users SET role = 'clinician' WHERE role = 'read_only'")
    _set_role_check(NEW_ROLES, OLD_ROLES)
