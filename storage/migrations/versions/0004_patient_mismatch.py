"""patient mismatch: instances kept in a stored study although they named another patient
(FACADE_PATIENT_MISMATCH=accept), for `facade qa mismatches`

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 07:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "patient_mismatch",
        sa.Column(
            "pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sop_uid", sa.String(length=64), nullable=False),
        sa.Column("study_uid", sa.String(length=64), nullable=False),
        sa.Column("study_id_system", sa.String(length=255), nullable=True),
        sa.Column("study_patient_id", sa.String(length=64), nullable=True),
        sa.Column("instance_id_system", sa.String(length=255), nullable=True),
        sa.Column("instance_patient_id", sa.String(length=64), nullable=True),
        sa.Column("received_via", sa.String(length=16), nullable=False),
        sa.Column("calling_ae", sa.String(length=16), nullable=True),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_patient_mismatch")),
    )
    with op.batch_alter_table("patient_mismatch", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_patient_mismatch_received_at"), ["received_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_patient_mismatch_sop_uid"), ["sop_uid"], unique=False)
        batch_op.create_index(batch_op.f("ix_patient_mismatch_study_uid"), ["study_uid"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("patient_mismatch", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_patient_mismatch_study_uid"))
        batch_op.drop_index(batch_op.f("ix_patient_mismatch_sop_uid"))
        batch_op.drop_index(batch_op.f("ix_patient_mismatch_received_at"))
    op.drop_table("patient_mismatch")
