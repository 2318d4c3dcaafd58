"""MPPS SCP (PS3.4 F.7) through the serving composition's DICOM listener, pynetdicom as the MPPS
SCU (DCMTK has no MPPS SCU), on SQLite and PostgreSQL: orders come in over the HL7 inbox, the
modality reports its performed step, the scheduled step, the ServiceRequest and the Procedure
follow."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom import Dataset
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.association import Association
from sqlalchemy import select

from facade.settings import Settings
from facade.wiring import Services
from storage.fhir_store.visibility import ALL
from storage.mpps.models import PerformedStepRow
from storage.orders.models import RequestedProcedureRow, ScheduledStepRow
from storage.usecases.mpps import DuplicatePps
from tests.archive import store
from tests.dicom_factory import new_uid
from tests.fhir_schema import assert_valid_r4
from tests.hl7_samples import adt, omi, orm
from tests.reactor import reactor_resumed

MPPS = "1.2.840.10008.3.1.2.3.3"
STUDY_UID = "1.2.826.0.1.3680043.10.1.1"  # the one orm() schedules


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"worklist_stations": {"CT": ["CT1"]}})


@pytest.fixture
def scu(port: int) -> Iterator[Association]:
    ae = AE(ae_title="CT1")
    ae.add_requested_context(MPPS, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", port, ae_title="FACADE")
    assert assoc.is_established
    yield assoc
    if assoc.is_established:
        assoc.release()


def order(services: Services, text: str) -> None:
    assert b"MSA|AA|" in services.hl7_inbox.receive(text.encode(), "127.0.0.1:50000")


def in_progress(
    *,
    sps_id: str = "SPS-1",
    accession: str = "ACC-1",
    rp_id: str = "RP-1",
    study_uid: str = STUDY_UID,
    patient_id: str = "PAT-1",
    status: str = "IN PROGRESS",
) -> Dataset:
    """An N-CREATE attribute list as a modality sends it (PS3.4 Table F.7.2-1)."""
    step = Dataset()
    step.StudyInstanceUID = study_uid
    step.ReferencedStudySequence = []
    step.AccessionNumber = accession
    step.RequestedProcedureID = rp_id
    step.RequestedProcedureDescription = "CT head"
    step.ScheduledProcedureStepID = sps_id
    step.ScheduledProcedureStepDescription = ""
    step.ScheduledProtocolCodeSequence = []
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ScheduledStepAttributesSequence = [step]
    ds.PatientName = "Doe^Jane"
    ds.PatientID = patient_id
    ds.IssuerOfPatientID = "HOSP"
    ds.PatientBirthDate = "19700102"
    ds.PatientSex = "F"
    ds.ReferencedPatientSequence = []
    ds.PerformedProcedureStepID = "PPS-1"
    ds.PerformedStationAETitle = "CT1"
    ds.PerformedStationName = "CT one"
    ds.PerformedLocation = ""
    ds.PerformedProcedureStepStartDate = "20261203"
    ds.PerformedProcedureStepStartTime = "110500"
    ds.PerformedProcedureStepStatus = status
    ds.PerformedProcedureStepDescription = "CT head without contrast"
    ds.PerformedProcedureTypeDescription = ""
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "24725-4", "LN", "CT Head"
    ds.ProcedureCodeSequence = [code]
    ds.PerformedProcedureStepEndDate = None
    ds.PerformedProcedureStepEndTime = None
    ds.Modality = "CT"
    ds.StudyID = "1"
    ds.PerformedProtocolCodeSequence = []
    ds.PerformedSeriesSequence = []
    return ds


def final(status: str = "COMPLETED", *, series: int = 1, end: bool = True) -> Dataset:
    """An N-SET modification list that ends the step (PS3.4 Table F.7.2-1, Final State)."""
    ds = Dataset()
    ds.PerformedProcedureStepStatus = status
    if end:
        ds.PerformedProcedureStepEndDate = "20261203"
        ds.PerformedProcedureStepEndTime = "112000"
    items = []
    for n in range(series):
        item = Dataset()
        item.SeriesInstanceUID = new_uid()
        item.SeriesDescription = f"series {n + 1}"
        item.ProtocolName = "Head"
        item.RetrieveAETitle = "FACADE"
        item.PerformingPhysicianName = ""
        item.OperatorsName = "Tech^Tim"
        item.ReferencedImageSequence = []
        item.ReferencedNonImageCompositeSOPInstanceSequence = []
        items.append(item)
    ds.PerformedSeriesSequence = items
    return ds


def create(scu: Association, ds: Dataset, uid: str | None = None) -> tuple[Dataset, str]:
    uid = uid or new_uid()
    reactor_resumed(scu)  # requests back to back on one association: tests/reactor.py
    status, _ = scu.send_n_create(ds, MPPS, uid)
    return status, uid


def n_set(scu: Association, ds: Dataset, uid: str) -> Dataset:
    reactor_resumed(scu)
    status, _ = scu.send_n_set(ds, MPPS, uid)
    return status


def steps(services: Services) -> dict[str, str]:
    with services.db.read() as session:
        return {s.sps_id: s.status for s in session.scalars(select(ScheduledStepRow))}


def performed(services: Services) -> list[PerformedStepRow]:
    with services.db.read() as session:
        return list(session.scalars(select(PerformedStepRow).order_by(PerformedStepRow.pk)))


def resource(services: Services, res_type: str, res_id: str) -> dict[str, Any]:
    body = services.search.read(res_type, res_id, visibility=ALL).to_json()
    assert_valid_r4(body)
    return body


def service_request(services: Services) -> dict[str, Any]:
    with services.db.read() as session:
        (row,) = session.scalars(select(RequestedProcedureRow))
    return resource(services, "ServiceRequest", row.fhir_id)


def procedure(services: Services, sop_uid: str) -> dict[str, Any]:
    (row,) = [r for r in performed(services) if r.sop_uid == sop_uid]
    return resource(services, "Procedure", row.fhir_id)


def test_in_progress_then_completed_moves_the_step_the_order_and_the_procedure(
    services: Services, scu: Association
) -> None:
    order(services, orm())
    status, uid = create(scu, in_progress())
    assert status.Status == 0x0000
    assert steps(services) == {"SPS-1": "STARTED"}
    request = service_request(services)
    assert request["status"] == "active"
    started = procedure(services, uid)
    assert started["status"] == "in-progress"
    assert started["basedOn"] == [{"reference": f"ServiceRequest/{request['id']}"}]
    assert started["subject"] == request["subject"]
    assert started["identifier"] == [{"system": "urn:dicom:uid", "value": f"urn:oid:{uid}"}]
    assert started["performedPeriod"] == {"start": "2026-12-03T11:05:00+01:00"}  # Europe/Zurich
    loinc = {"system": "http://loinc.org", "code": "24725-4", "display": "CT Head"}
    assert started["code"]["coding"] == [loinc]
    (row,) = performed(services)
    assert (row.status, row.study_uid, row.scheduled_step_pk is not None) == ("IN PROGRESS", STUDY_UID, True)

    assert n_set(scu, final(series=2), uid).Status == 0x0000
    assert steps(services) == {"SPS-1": "COMPLETED"}
    assert service_request(services)["status"] == "completed"
    done = procedure(services, uid)
    assert done["status"] == "completed" and done["meta"]["versionId"] == "2"
    period = {"start": "2026-12-03T11:05:00+01:00", "end": "2026-12-03T11:20:00+01:00"}
    assert done["performedPeriod"] == period
    performers = [(p["function"]["text"], p["actor"]["display"]) for p in done["performer"]]
    assert performers == [("Operator", "Tim Tech"), ("Modality", "CT one (AE CT1)")]  # from the series
    (row,) = performed(services)
    assert (row.status, row.end_date, row.end_time) == ("COMPLETED", "20261203", "112000")
    assert len(row.dataset["00400340"]["Value"]) == 2  # the Performed Series Sequence, kept as DICOM JSON

    again = n_set(scu, final(), uid)
    assert (again.Status, again.ErrorID) == (0x0110, 0xA710)
    assert again.ErrorComment == "Performed Procedure Step Object may no longer be updated"
    assert procedure(services, uid)["meta"]["versionId"] == "2"


def test_the_procedure_is_searchable(services: Services, scu: Association) -> None:
    order(services, orm())
    _, uid = create(scu, in_progress())
    request = service_request(services)

    def ids(*pairs: tuple[str, str]) -> list[str]:
        query = services.search.parse("Procedure", list(pairs))
        return [m.res_id for m in services.search.search(query, visibility=ALL).matches]

    mine = [procedure(services, uid)["id"]]
    assert ids(("based-on", f"ServiceRequest/{request['id']}")) == mine
    assert ids(("patient", request["subject"]["reference"])) == mine
    assert ids(("identifier", f"urn:dicom:uid|urn:oid:{uid}")) == mine
    assert ids(("status", "in-progress")) == mine
    assert ids(("date", "2026-12-03")) == []  # in progress: the period is open, not within the day
    assert ids(("date", "ge2026-12-04")) == mine
    assert ids(("date", "lt2026-12-03T11:00")) == []
    assert ids(("code", "http://loinc.org|24725-4")) == mine
    query = services.search.parse("Procedure", [("_include", "Procedure:based-on")])
    included = services.search.search(query, visibility=ALL).included
    assert [(r.res_type, r.res_id) for r in included] == [("ServiceRequest", request["id"])]
    n_set(scu, final(), uid)
    assert ids(("date", "2026-12-03")) == mine
    assert ids(("date", "ge2026-12-04")) == []


def test_n_create_must_be_in_progress(services: Services, scu: Association) -> None:
    order(services, orm())
    status, _ = create(scu, in_progress(status="COMPLETED"))
    assert status.Status == 0x0106 and "IN PROGRESS" in status.ErrorComment
    assert performed(services) == [] and steps(services) == {"SPS-1": "SCHEDULED"}
    ds = in_progress()
    ds.PerformedProcedureStepStartDate = "03.12.2026"
    status, _ = create(scu, ds)
    assert status.Status == 0x0106 and "PerformedProcedureStepStartDate" in status.ErrorComment


def test_n_create_without_a_required_attribute(services: Services, scu: Association) -> None:
    ds = in_progress()
    del ds.ScheduledStepAttributesSequence
    status, _ = create(scu, ds)
    assert status.Status == 0x0120 and "ScheduledStepAttributesSequence" in status.ErrorComment
    ds = in_progress()
    ds.PerformedProcedureStepStartDate = None
    status, _ = create(scu, ds)
    assert status.Status == 0x0121 and "PerformedProcedureStepStartDate" in status.ErrorComment
    assert performed(services) == []


def test_duplicate_n_create(services: Services, scu: Association) -> None:
    order(services, orm())
    status, uid = create(scu, in_progress())
    assert status.Status == 0x0000
    status, _ = create(scu, in_progress(), uid)
    assert status.Status == 0x0111
    assert len(performed(services)) == 1


def test_n_set_of_an_unknown_instance(scu: Association) -> None:
    assert n_set(scu, final(), new_uid()).Status == 0x0112


def test_n_set_rules(services: Services, scu: Association) -> None:
    order(services, orm())
    _, uid = create(scu, in_progress())
    no_end = n_set(scu, final(end=False), uid)
    assert no_end.Status == 0x0121 and "PerformedProcedureStepEndDate" in no_end.ErrorComment
    odd = Dataset()
    odd.PerformedProcedureStepStatus = "PAUSED"
    assert n_set(scu, odd, uid).Status == 0x0106
    progress = Dataset()
    progress.PerformedProcedureStepStatus = "IN PROGRESS"
    progress.PerformedProcedureStepDescription = "CT head, second try"
    progress.PatientID = "OTHER"  # not allowed in an N-SET: ignored
    assert n_set(scu, progress, uid).Status == 0x0000
    (row,) = performed(services)
    assert row.status == "IN PROGRESS" and row.dataset["00100020"]["Value"] == ["PAT-1"]
    assert procedure(services, uid)["code"]["text"] == "CT head, second try"
    assert steps(services) == {"SPS-1": "STARTED"}


def test_discontinued_before_any_image_revokes_the_order(services: Services, scu: Association) -> None:
    order(services, orm())
    _, uid = create(scu, in_progress())
    reason = final("DISCONTINUED", series=0)
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = (
        "110514",
        "DCM",
        "Incorrect worklist entry selected",
    )
    reason.PerformedProcedureStepDiscontinuationReasonCodeSequence = [code]
    assert n_set(scu, reason, uid).Status == 0x0000
    assert steps(services) == {"SPS-1": "DISCONTINUED"}
    assert service_request(services)["status"] == "revoked"
    assert procedure(services, uid)["status"] == "not-done"
    assert n_set(scu, final(), uid).Status == 0x0110


def test_discontinued_after_images_is_stopped_and_a_new_pps_restarts_the_step(
    services: Services, scu: Association
) -> None:
    order(services, orm())
    _, first = create(scu, in_progress())
    n_set(scu, final("DISCONTINUED", series=1), first)
    assert procedure(services, first)["status"] == "stopped"
    assert service_request(services)["status"] == "revoked"
    _, second = create(scu, in_progress())
    assert steps(services) == {"SPS-1": "STARTED"} and service_request(services)["status"] == "active"
    n_set(scu, final(), second)
    assert steps(services) == {"SPS-1": "COMPLETED"} and service_request(services)["status"] == "completed"


def test_an_order_of_two_steps_completes_when_both_are_final(services: Services, scu: Association) -> None:
    order(services, omi())
    kw = {"accession": "ACC-2", "rp_id": "RP-2", "study_uid": "1.2.826.0.1.3680043.10.1.2"}
    kw["patient_id"] = "PAT-2"
    _, mr = create(scu, in_progress(sps_id="SPS-2a", **kw))
    _, ct = create(scu, in_progress(sps_id="SPS-2b", **kw))
    n_set(scu, final(), mr)
    assert steps(services) == {"SPS-2a": "COMPLETED", "SPS-2b": "STARTED"}
    assert service_request(services)["status"] == "active"
    n_set(scu, final("DISCONTINUED", series=0), ct)
    assert steps(services) == {"SPS-2a": "COMPLETED", "SPS-2b": "DISCONTINUED"}
    assert service_request(services)["status"] == "completed"


def test_unscheduled_pps_gets_a_procedure_without_based_on(services: Services, scu: Association) -> None:
    order(services, orm())
    status, uid = create(scu, in_progress(sps_id="", accession="", rp_id="", study_uid=new_uid()))
    assert status.Status == 0x0000
    (row,) = performed(services)
    assert row.scheduled_step_pk is None
    body = procedure(services, uid)
    assert "basedOn" not in body and body["status"] == "in-progress"
    assert body["subject"] == service_request(services)["subject"]  # PAT-1 of HOSP: the order's patient
    assert steps(services) == {"SPS-1": "SCHEDULED"}
    status, stranger = create(scu, in_progress(sps_id="NOPE", patient_id="PAT-9"))
    assert status.Status == 0x0000
    other = procedure(services, stranger)
    assert "basedOn" not in other and other["subject"] != body["subject"]
    patient = resource(services, "Patient", other["subject"]["reference"].split("/")[1])
    assert patient["identifier"][0]["value"] == "PAT-9"


def test_n_create_without_an_instance_uid_gets_one(services: Services, scu: Association) -> None:
    order(services, orm())
    status, _ = scu.send_n_create(in_progress(), MPPS, None)
    assert status.Status == 0x0000
    (row,) = performed(services)
    assert row.sop_uid.startswith("2.25.")


def test_n_creates_of_one_uid_at_once_record_one(services: Services) -> None:
    """The unique key decides; the losers retry, find the winner's step and are refused."""
    order(services, orm())
    uid, outcomes = new_uid(), []
    barrier = threading.Barrier(4)

    def create_one() -> None:
        barrier.wait()
        try:
            services.mpps.create(uid, in_progress(), calling_ae="CT1")
            outcomes.append("created")
        except DuplicatePps:
            outcomes.append("duplicate")

    threads = [threading.Thread(target=create_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["created", "duplicate", "duplicate", "duplicate"]
    assert len(performed(services)) == 1 and steps(services) == {"SPS-1": "STARTED"}


def test_an_order_the_modality_started_can_no_longer_be_cancelled(
    services: Services, scu: Association
) -> None:
    """The step the MPPS started is what the order controls see: a cancel (CA) is refused (SWF:
    discontinue a started procedure instead), a discontinue (DC) applies."""
    order(services, orm())
    create(scu, in_progress())
    ack = services.hl7_inbox.receive(orm("CA", msg_id="C1").encode(), "127.0.0.1:50000")
    assert b"MSA|AE|C1" in ack and b"discontinue" in ack
    assert steps(services) == {"SPS-1": "STARTED"}
    order(services, orm("DC", msg_id="D1", order_status="DC"))
    assert steps(services) == {"SPS-1": "DISCONTINUED"} and service_request(services)["status"] == "revoked"


def test_one_pps_for_two_scheduled_steps(services: Services, scu: Association) -> None:
    """IHE's group case: one performed step carries out both steps of the order."""
    order(services, omi())
    ds = in_progress(sps_id="SPS-2a", accession="ACC-2", rp_id="RP-2", study_uid="1.2.826.0.1.3680043.10.1.2")
    second = copy.deepcopy(ds.ScheduledStepAttributesSequence[0])
    second.ScheduledProcedureStepID = "SPS-2b"
    ds.ScheduledStepAttributesSequence.append(second)
    ds.PatientID = "PAT-2"
    _, uid = create(scu, ds)
    assert steps(services) == {"SPS-2a": "STARTED", "SPS-2b": "STARTED"}
    assert procedure(services, uid)["basedOn"] == [
        {"reference": f"ServiceRequest/{service_request(services)['id']}"}
    ]
    n_set(scu, final(), uid)
    assert steps(services) == {"SPS-2a": "COMPLETED", "SPS-2b": "COMPLETED"}
    assert service_request(services)["status"] == "completed"


def test_an_order_that_arrives_after_the_n_create_is_linked_by_the_n_set(
    services: Services, scu: Association
) -> None:
    _, uid = create(scu, in_progress())
    assert "basedOn" not in procedure(services, uid)
    order(services, orm())
    n_set(scu, final(), uid)
    (row,) = performed(services)
    assert row.scheduled_step_pk is not None and steps(services) == {"SPS-1": "COMPLETED"}
    request = service_request(services)
    assert request["status"] == "completed"
    assert procedure(services, uid)["basedOn"] == [{"reference": f"ServiceRequest/{request['id']}"}]


def test_a_merge_moves_the_performed_steps_of_the_prior_patient(services: Services, scu: Association) -> None:
    """ADT^A40 folds PAT-9 into PAT-1: the unscheduled step made for PAT-9 follows, its Procedure
    names the survivor."""
    order(services, orm())
    _, uid = create(scu, in_progress(sps_id="", accession="", rp_id="", patient_id="PAT-9"))
    before = procedure(services, uid)["subject"]
    order(services, adt("A40", msg_id="MERGE1", patient_id="PAT-1", prior="PAT-9"))
    after = procedure(services, uid)
    assert after["subject"] == service_request(services)["subject"] != before
    assert after["meta"]["versionId"] == "2"


def test_the_imaging_study_names_the_procedure_that_made_it(
    services: Services, scu: Association, tmp_path: Path
) -> None:
    """ImagingStudy.procedureReference: whether the images come after the N-CREATE or before."""
    order(services, orm())
    _, uid = create(scu, in_progress())
    store(
        services,
        tmp_path,
        study_uid=STUDY_UID,
        series_uid=new_uid(),
        patient_id="PAT-1",
        AccessionNumber="ACC-1",
    )
    study = resource(services, "ImagingStudy", STUDY_UID)
    assert study["procedureReference"] == {"reference": f"Procedure/{procedure(services, uid)['id']}"}
    assert study["basedOn"] == [{"reference": f"ServiceRequest/{service_request(services)['id']}"}]
    other = new_uid()
    store(services, tmp_path, study_uid=other, series_uid=new_uid(), patient_id="PAT-7")
    assert "procedureReference" not in resource(services, "ImagingStudy", other)
    _, late = create(scu, in_progress(sps_id="", accession="", rp_id="", study_uid=other, patient_id="PAT-7"))
    late_study = resource(services, "ImagingStudy", other)
    assert late_study["procedureReference"] == {"reference": f"Procedure/{procedure(services, late)['id']}"}


def test_n_get_returns_the_step_as_the_last_n_set_left_it_to_any_scu(
    services: Services, scu: Association, port: int
) -> None:
    order(services, orm())
    created = in_progress()
    created.PatientName = "Müller^Jürgen"
    status, uid = create(scu, created)
    assert status.Status == 0x0000
    assert n_set(scu, final(), uid).Status == 0x0000

    # another SCU (a RIS, a reporting station) reads it on an association of its own
    ae = AE(ae_title="RIS")
    ae.add_requested_context(MPPS, ExplicitVRLittleEndian)
    other = ae.associate("127.0.0.1", port, ae_title="FACADE")
    assert other.is_established
    try:
        asked = [0x00400252, 0x00100010, 0x00400250, 0x00400340, 0x00400244, 0x00081030]
        status, got = other.send_n_get(asked, MPPS, uid)
        assert status.Status == 0x0000 and got is not None
        assert (got.PerformedProcedureStepStatus, str(got.PatientName)) == ("COMPLETED", "Müller^Jürgen")
        assert got.SpecificCharacterSet == "ISO_IR 100" and got.PerformedProcedureStepEndDate == "20261203"
        assert got.PerformedSeriesSequence[0].OperatorsName == "Tech^Tim"
        assert "StudyDescription" in got and got.StudyDescription in ("", None)  # not held: empty
        assert "ScheduledStepAttributesSequence" not in got  # not asked

        status, everything = other.send_n_get([], MPPS, uid)  # no list: every attribute
        assert status.Status == 0x0000 and everything is not None
        assert everything.ScheduledStepAttributesSequence[0].ScheduledProcedureStepID == "SPS-1"
        assert everything.PerformedProcedureStepID == "PPS-1" and everything.Modality == "CT"

        # a private tag is no attribute we know: a warning naming it, the others returned
        status, partial = other.send_n_get([0x00090010, 0x00400252], MPPS, uid)
        assert status.Status == 0x0107 and status.AttributeIdentifierList == 0x00090010
        assert partial is not None and partial.PerformedProcedureStepStatus == "COMPLETED"

        status, none = other.send_n_get([0x00400252], MPPS, new_uid())
        assert status.Status == 0x0112 and none is None
        status, _ = other.send_n_get([0x00400252], MPPS, "not-a-uid")
        assert status.Status == 0x0117
    finally:
        other.release()
