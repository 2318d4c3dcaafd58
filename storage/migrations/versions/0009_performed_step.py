"""performed procedure steps (MPPS)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "performed_step",
        sa.Column(
            "pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("sop_uid", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("scheduled_step_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("patient_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("study_uid", sa.String(length=64), nullable=False),
        sa.Column("start_date", sa.String(length=8), nullable=False),
        sa.Column("start_time", sa.String(length=16), nullable=False),
        sa.Column("end_date", sa.String(length=8), nullable=False),
        sa.Column("end_time", sa.String(length=16), nullable=False),
        sa.Column("fhir_id", sa.String(length=64), nullable=False),
        sa.Column("calling_ae", sa.String(length=16), nullable=False),
        sa.Column("dataset", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_pk"], ["patient.pk"], name=op.f("fk_performed_step_patient_pk_patient")
        ),
        sa.ForeignKeyConstraint(
            ["scheduled_step_pk"],
            ["scheduled_step.pk"],
            name=op.f("fk_performed_step_scheduled_step_pk_scheduled_step"),
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_performed_step")),
        sa.UniqueConstraint("fhir_id", name=op.f("uq_performed_step_fhir_id")),
        sa.UniqueConstraint("sop_uid", name=op.f("uq_performed_step_sop_uid")),
    )
    with op.batch_alter_table("performed_step", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_performed_step_patient_pk"), ["patient_pk"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_performed_step_scheduled_step_pk"), ["scheduled_step_pk"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_performed_step_study_uid"), ["study_uid"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("performed_step", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_performed_step_study_uid"))
        batch_op.drop_index(batch_op.f("ix_performed_step_scheduled_step_pk"))
        batch_op.drop_index(batch_op.f("ix_performed_step_patient_pk"))

    op.drop_table("performed_step")
