"""ORM^O01 / OMI^O23 -> the order model: every field of the reference table, and what is refused."""

from __future__ import annotations

import pytest

from mapping.dicom.facts import local_issuer_system
from mapping.hl7.er7 import split_message
from mapping.hl7.errors import Hl7Error
from mapping.hl7.orders import OrderRules, order_message
from mapping.order.facts import Coded, EntityId, OrderMessage, Person
from tests.hl7_samples import omi, orm

RULES = OrderRules(
    default_system="urn:facade:patient-id",
    issuer_system=local_issuer_system("urn:facade:issuer", {}),
    stations={"CT": ("CT1", "CT2"), "CT@ER": ("CT-ER",)},
    modalities={"RAD": "CR"},
)


def read(text: str, rules: OrderRules = RULES) -> OrderMessage:
    return order_message(split_message(text), charset="ISO_IR 192", rules=rules)


def test_orm_with_zds_maps_every_field() -> None:
    order = read(orm())
    patient = order.patient
    assert (patient.patient_id, patient.id_system, patient.issuer_stated) == (
        "PAT-1",
        "urn:facade:issuer:HOSP",
        True,
    )
    assert (patient.name, patient.birth_date, patient.sex) == ("Doe^Jane", "19700102", "F")
    assert order.patient_issuer == "HOSP"
    (procedure,) = order.procedures
    assert (procedure.control, procedure.order_status) == ("NW", "SC")
    assert procedure.placer == EntityId("PLC-1", "RIS") and procedure.filler == EntityId("FIL-1", "FACADE")
    assert procedure.accession == EntityId("ACC-1")
    assert (procedure.requested_procedure_id, procedure.study_uid) == ("RP-1", "1.2.826.0.1.3680043.10.1.1")
    assert procedure.code == Coded("CTHEAD", "CT Head", "L") and procedure.description == "CT Head"
    assert procedure.priority == "ROUTINE"
    assert procedure.requesting_physician == Person("5678", "Order^Otto")
    assert procedure.referring_physician == Person("1234", "Referrer^Rita")
    assert procedure.medical_alerts == "Contrast allergy" and procedure.admission_id == "V123"
    assert procedure.ordered_at == "20261203101000"
    (step,) = procedure.steps
    assert (step.sps_id, step.modality, step.start_date, step.start_time) == (
        "SPS-1",
        "CT",
        "20261203",
        "110000",
    )
    assert step.description == "CT head w/o contrast" and step.protocol == (
        Coded("P-CTH", "CT head w/o contrast", "L"),
    )
    assert step.station_aets == ("CT1", "CT2")  # ORM has no AE title: the configured rule
    assert step.performing_physician == "Tech^Tim"


def test_omi_makes_one_step_per_ipc_with_repeated_ae_titles() -> None:
    order = read(omi())
    (procedure,) = order.procedures
    assert procedure.accession == EntityId("ACC-2", "HOSP") and procedure.requested_procedure_id == "RP-2"
    assert procedure.study_uid == "1.2.826.0.1.3680043.10.1.2" and procedure.priority == "STAT"
    first, second = procedure.steps
    assert (first.sps_id, first.modality, first.station_aets) == ("SPS-2a", "MR", ("MR1", "MR2"))
    assert (second.sps_id, second.modality, second.station_aets) == ("SPS-2b", "CT", ("CT1",))
    assert (first.start_date, first.start_time) == ("20261203", "140000")  # TQ1-7
    assert (first.station_name, first.location) == ("ST1", "ROOM1")
    assert first.protocol == (Coded("P1", "Protocol one", "L"),)


def test_station_rule_by_modality_and_location() -> None:
    (procedure,) = read(orm().replace("PV1||O|RAD^^^HOSP", "PV1||O|ER^^^HOSP")).procedures
    assert procedure.steps[0].station_aets == ("CT-ER",)
    (procedure,) = read(orm(modality="MR")).procedures
    assert procedure.steps[0].station_aets == ()


def test_modality_lookup_and_unknown_modality() -> None:
    assert read(orm(modality="RAD")).procedures[0].steps[0].modality == "CR"
    assert read(orm(modality="XYZ")).procedures[0].steps[0].modality == ""


def test_xpn_becomes_dicom_pn_and_the_legal_name_wins() -> None:
    text = orm(name="Alias^Al~Doe^Jane^Q^Jr^Dr^^L")
    assert read(text).patient.name == "Doe^Jane^Q^Dr^Jr"


def test_the_assigning_authority_picks_the_patient_id() -> None:
    text = orm(patient_id="X-9^^^OTHER~PAT-1^^^HOSP&1.2.3.4&ISO^MR")
    patient = read(text).patient
    assert (patient.patient_id, patient.id_system) == ("PAT-1", "urn:oid:1.2.3.4")  # the MR one
    chosen = read(text, OrderRules(**{**RULES.__dict__, "patient_id_authority": "OTHER"})).patient
    assert chosen.patient_id == "X-9"


def test_no_start_time_defaults_to_the_order_time() -> None:
    text = orm(start="").replace("|^^^^^R|", "||")
    assert read(text).procedures[0].steps[0].start_date == "20261203"


def test_several_orders_in_one_message() -> None:
    text = orm() + "ORC|NW|PLC-9^RIS|||SC\rOBR|1|PLC-9^RIS||XR^Chest^L||||||||||||||ACC-9|RP-9|||||CR\r"
    first, second = read(text).procedures
    assert first.placer.value == "PLC-1" and second.placer.value == "PLC-9"
    assert second.accession.value == "ACC-9" and second.study_uid == ""  # the use case generates it


@pytest.mark.parametrize(
    ("text", "code", "where"),
    [
        (orm(patient_id=""), "101", ("PID", 1, 3)),
        (orm().replace("PID|||", "XXX|||"), "101", ("PID", 1, None)),
        (orm(control="ZZ"), "103", ("ORC", 1, 1)),
        (orm(control=""), "101", ("ORC", 1, 1)),
        (orm(study_uid="not-a-uid"), "102", ("ZDS", 1, 1)),
        (orm(placer="", filler="", accession=""), "101", ("ORC", 1, 2)),
        (orm(start="tomorrow"), "102", ("ORC", 1, 7)),
    ],
)
def test_what_is_refused_names_segment_and_field(text: str, code: str, where: tuple[object, ...]) -> None:
    with pytest.raises(Hl7Error) as refused:
        read(text)
    location = refused.value.location
    assert refused.value.ack == "AE" and refused.value.code == code
    assert location is not None and (location.segment, location.sequence, location.field) == where
