"""orders and the HL7 inbox

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hl7_message",
        sa.Column(
            "pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("peer", sa.String(length=64), nullable=False),
        sa.Column("sending_application", sa.String(length=227), nullable=True),
        sa.Column("sending_facility", sa.String(length=227), nullable=True),
        sa.Column("control_id", sa.String(length=199), nullable=True),
        sa.Column("message_type", sa.String(length=16), nullable=False),
        sa.Column("ack_code", sa.String(length=2), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("ack", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_hl7_message")),
        sa.UniqueConstraint(
            "sending_application", "sending_facility", "control_id", name="uq_hl7_message_key"
        ),
    )
    with op.batch_alter_table("hl7_message", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_hl7_message_received_at"), ["received_at"], unique=False)

    op.create_table(
        "requested_procedure",
        sa.Column(
            "pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("fhir_id", sa.String(length=64), nullable=False),
        sa.Column("patient_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("placer", sa.String(length=64), nullable=False),
        sa.Column("filler", sa.String(length=64), nullable=False),
        sa.Column("accession", sa.String(length=64), nullable=False),
        sa.Column("study_uid", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("facts", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_pk"], ["patient.pk"], name=op.f("fk_requested_procedure_patient_pk_patient")
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_requested_procedure")),
        sa.UniqueConstraint("fhir_id", name=op.f("uq_requested_procedure_fhir_id")),
    )
    with op.batch_alter_table("requested_procedure", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_requested_procedure_accession"), ["accession"], unique=False)
        batch_op.create_index(batch_op.f("ix_requested_procedure_filler"), ["filler"], unique=False)
        batch_op.create_index(batch_op.f("ix_requested_procedure_patient_pk"), ["patient_pk"], unique=False)
        batch_op.create_index(batch_op.f("ix_requested_procedure_placer"), ["placer"], unique=False)
        batch_op.create_index(batch_op.f("ix_requested_procedure_study_uid"), ["study_uid"], unique=False)

    op.create_table(
        "scheduled_step",
        sa.Column(
            "pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("procedure_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("sps_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("modality", sa.String(length=16), nullable=False),
        sa.Column("start_date", sa.String(length=8), nullable=False),
        sa.Column("start_time", sa.String(length=16), nullable=False),
        sa.Column("station_aets", sa.String(length=255), nullable=False),
        sa.Column("facts", sa.JSON(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["procedure_pk"],
            ["requested_procedure.pk"],
            name=op.f("fk_scheduled_step_procedure_pk_requested_procedure"),
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_scheduled_step")),
    )
    with op.batch_alter_table("scheduled_step", schema=None) as batch_op:
        batch_op.create_index("ix_scheduled_step_open", ["start_date", "status"], unique=False)
        batch_op.create_index(batch_op.f("ix_scheduled_step_procedure_pk"), ["procedure_pk"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("scheduled_step", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_scheduled_step_procedure_pk"))
        batch_op.drop_index("ix_scheduled_step_open")

    op.drop_table("scheduled_step")
    with op.batch_alter_table("requested_procedure", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_requested_procedure_study_uid"))
        batch_op.drop_index(batch_op.f("ix_requested_procedure_placer"))
        batch_op.drop_index(batch_op.f("ix_requested_procedure_patient_pk"))
        batch_op.drop_index(batch_op.f("ix_requested_procedure_filler"))
        batch_op.drop_index(batch_op.f("ix_requested_procedure_accession"))

    op.drop_table("requested_procedure")
    with op.batch_alter_table("hl7_message", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_hl7_message_received_at"))

    op.drop_table("hl7_message")
