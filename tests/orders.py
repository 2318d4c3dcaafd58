"""Putting orders into the database for worklist tests: rows written through the SQLAlchemy
models (the HL7 path that fills them in production comes with its own tests)."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from facade.wiring import Services
from mapping.order.facts import (
    Coded,
    EntityId,
    Person,
    RequestedProcedure,
    ScheduledStep,
    procedure_json,
    step_json,
)
from storage.dicom_index.models import PatientRow
from storage.orders.models import RequestedProcedureRow, ScheduledStepRow


def procedure(number: str = "ACC-1", **changes: Any) -> RequestedProcedure:
    """A complete requested procedure with one step; `changes` replace its fields."""
    step = ScheduledStep(
        sps_id=f"SPS-{number}",
        modality="CT",
        start_date="20261203",
        start_time="093000",
        description="CT head without contrast",
        protocol=(Coded("P-HEAD", "Head protocol", "99LOCAL"),),
        station_aets=("CT1",),
        station_name="CT-ROOM-1",
        location="Radiology 1",
        performing_physician="Tech^Tina",
    )
    base = RequestedProcedure(
        control="NW",
        order_status="SC",
        placer=EntityId(f"PL-{number}", "EHR"),
        filler=EntityId(f"FI-{number}", "RIS"),
        accession=EntityId(number, "RIS", "1.2.3.4.5", "ISO"),
        requested_procedure_id=f"RP-{number}",
        study_uid=f"1.2.826.0.1.3680043.10.543.{uuid.uuid4().int % 10**12}",
        code=Coded("CTHEAD", "CT Head", "99LOCAL"),
        description="CT Head",
        priority="ROUTINE",
        requesting_physician=Person("D1", "Order^Olga"),
        referring_physician=Person("D2", "Refer^Rita"),
        reason="Headache",
        reason_codes=(Coded("R51", "Headache", "I10"),),
        medical_alerts="None known",
        patient_state="Ambulatory",
        pregnancy_status=4,
        admission_id="ADM-1",
        transport="WALK",
        comments="Patient anxious",
        ordered_at="20261202120000",
        steps=(step,),
    )
    step_changes = {k: changes.pop(k) for k in list(changes) if k in ScheduledStep.__dataclass_fields__}
    if step_changes:
        base = replace(base, steps=(replace(step, **step_changes),))
    return replace(base, **changes)


def seed(
    services: Services,
    order: RequestedProcedure,
    *,
    patient_id: str = "PID-1",
    name: str = "Testperson^Alice",
    birth_date: str = "19800101",
    sex: str = "F",
    status: str = "SCHEDULED",
) -> None:
    """One requested procedure and its steps (each with `status`) for the patient with
    `patient_id`, created with the given demographics when new."""
    now = datetime.now(UTC)
    with services.db.write() as session:
        patient = session.scalars(select(PatientRow).where(PatientRow.patient_id == patient_id)).first()
        if patient is None:
            patient = PatientRow(
                fhir_id=uuid.uuid4().hex,
                id_system="urn:test",
                patient_id=patient_id,
                name=name,
                birth_date=birth_date,
                sex=sex,
                created_at=now,
                changed_at=now,
            )
            session.add(patient)
            session.flush()
        row = RequestedProcedureRow(
            fhir_id=uuid.uuid4().hex,
            patient_pk=patient.pk,
            placer=order.placer.value,
            filler=order.filler.value,
            accession=order.accession.value,
            study_uid=order.study_uid,
            status="active",
            facts=procedure_json(order),
            created_at=now,
            changed_at=now,
        )
        session.add(row)
        session.flush()
        for step in order.steps:
            session.add(
                ScheduledStepRow(
                    procedure_pk=row.pk,
                    sps_id=step.sps_id,
                    status=status,
                    modality=step.modality,
                    start_date=step.start_date,
                    start_time=step.start_time,
                    station_aets="\\".join(step.station_aets),
                    facts=step_json(step),
                    changed_at=now,
                )
            )
