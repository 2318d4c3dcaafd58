"""ADT (IHE RAD-1 / RAD-12): A01, A04, A05, A08, A31 say who the patient is now; A40 merges a
prior patient (MRG-1) into the one the PID names.

A field sent as HL7's explicit null `""` blanks the stored value; a field left empty changes
nothing (reference §5), so a sparse A08 never erases what it does not mention.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mapping.dicom.facts import PatientFacts
from mapping.hl7.details import Details, patient_details
from mapping.hl7.er7 import Er7Message, Segment
from mapping.hl7.errors import DUPLICATE_KEY, REQUIRED_FIELD, Hl7Error
from mapping.hl7.orders import OrderRules, patient_from_pid

UPDATES = ("A01", "A04", "A05", "A08", "A31")
MERGES = ("A40",)


@dataclass(frozen=True)
class PatientUpdate:
    patient: PatientFacts
    cleared: frozenset[str]  # "name", "birth_date", "sex": sent as `""`
    # allergies, weight, size, location, route of admissions, admission id as sent (AL1, OBX,
    # PV1): the patient's open orders, and so their worklist entries, take them
    details: Details = field(default_factory=Details)


@dataclass(frozen=True)
class Merge:
    """One PID / MRG pair of an A40: fold `prior` into `survivor`."""

    survivor: PatientFacts
    prior: PatientFacts
    sequence: int  # the pair's position (1-based), for the ERR of a refusal


def patient_update(message: Er7Message, rules: OrderRules) -> PatientUpdate:
    pid = message.first("PID")
    if pid is None:
        raise Hl7Error.error(REQUIRED_FIELD, "the message has no PID segment", segment="PID")
    facts, _, _ = patient_from_pid(pid, rules)
    cleared = {name for name, n in (("name", 5), ("birth_date", 7), ("sex", 8)) if pid.is_null(n)}
    return PatientUpdate(facts, frozenset(cleared), patient_details(message))


def merges(message: Er7Message, rules: OrderRules) -> list[Merge]:
    """The PID / MRG pairs of an A40 (several pairs merge several patients)."""
    out: list[Merge] = []
    pid: Segment | None = None
    pid_count = mrg_count = 0
    for segment in message.segments:
        if segment.name == "PID":
            pid, pid_count = segment, pid_count + 1
        elif segment.name == "MRG":
            mrg_count += 1
            if pid is None:
                raise Hl7Error.error(REQUIRED_FIELD, "MRG without a PID before it", segment="PID")
            survivor, _, _ = patient_from_pid(pid, rules)
            prior = _prior(segment, mrg_count, rules)
            if (prior.patient_id, prior.id_system) == (survivor.patient_id, survivor.id_system):
                raise Hl7Error.error(
                    DUPLICATE_KEY,
                    "MRG-1 names the same patient as PID-3",
                    segment="MRG",
                    sequence=mrg_count,
                    field=1,
                )
            out.append(Merge(survivor, prior, mrg_count))
            pid = None
    if not out:
        raise Hl7Error.error(REQUIRED_FIELD, "an A40 needs a PID and an MRG segment", segment="MRG")
    return out


def _prior(mrg: Segment, sequence: int, rules: OrderRules) -> PatientFacts:
    """MRG-1 is a CX list like PID-3: read it with the same rule (as a PID whose field 3 it is)."""
    if not mrg.value(1).strip():
        raise Hl7Error.error(
            REQUIRED_FIELD,
            "MRG-1 (prior patient identifier list) is empty",
            segment="MRG",
            sequence=sequence,
            field=1,
        )
    as_pid = Segment("PID", ("PID", "", "", mrg.raw(1)), mrg.delimiters)
    facts, _, _ = patient_from_pid(as_pid, rules)
    return facts
