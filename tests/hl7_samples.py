"""HL7 v2 order messages as a RIS sends them (synthetic patients), for the orders tests."""

from __future__ import annotations

CR = "\r"


def orm(
    control: str = "NW",
    *,
    msg_id: str = "MSG0001",
    placer: str = "PLC-1",
    filler: str = "FIL-1",
    accession: str = "ACC-1",
    rp_id: str = "RP-1",
    sps_id: str = "SPS-1",
    patient_id: str = "PAT-1",
    name: str = "Doe^Jane",
    modality: str = "CT",
    start: str = "20261203110000",
    order_status: str = "SC",
    study_uid: str | None = "1.2.826.0.1.3680043.10.1.1",
    version: str = "2.3.1",
    charset: str = "",
) -> str:
    """ORM^O01 v2.3.1 with ZDS (IHE RAD-4), one OBR."""
    segments = [
        f"MSH|^~\\&|RIS|HOSP|FACADE|HOSP|20261203101500||ORM^O01|{msg_id}|P|{version}||||||{charset}",
        f"PID|||{patient_id}^^^HOSP^MR||{name}||19700102|F",
        "|".join(["PV1", "", "O", "RAD^^^HOSP", "", "", "", "", "1234^Referrer^Rita", *[""] * 10, "V123"]),
        f"ORC|{control}|{placer}^RIS|{filler}^FACADE||{order_status}||^^^{start}^^R||20261203101000",
        f"OBR|1|{placer}^RIS|{filler}^FACADE|CTHEAD^CT Head^L^P-CTH^CT head w/o contrast^L|||||||||"
        f"Contrast allergy|||5678^Order^Otto||{accession}|{rp_id}|{sps_id}||||{modality}|||^^^{start}^^R"
        "|||||||&Tech&Tim",
    ]
    if study_uid:
        segments.append(f"ZDS|{study_uid}^^Application^DICOM")
    return CR.join(segments) + CR


def omi(
    control: str = "NW",
    *,
    msg_id: str = "OMI0001",
    placer: str = "PLC-2",
    filler: str = "FIL-2",
    accession: str = "ACC-2",
    patient_id: str = "PAT-2",
    name: str = "Roe^Richard",
    ipcs: tuple[tuple[str, str, str], ...] = (("SPS-2a", "MR", "MR1~MR2"), ("SPS-2b", "CT", "CT1")),
    start: str = "20261203140000",
) -> str:
    """OMI^O23 v2.5.1 with TQ1 and one IPC per scheduled step (sps id, modality, AE titles)."""
    segments = [
        f"MSH|^~\\&|RIS|HOSP|FACADE|HOSP|20261203101500||OMI^O23^OMI_O23|{msg_id}|P|2.5.1",
        f"PID|||{patient_id}^^^HOSP^MR||{name}||19800304|M",
        "PV1||O|RAD^^^HOSP",
        f"ORC|{control}|{placer}^RIS|{filler}^FACADE||SC",
        f"TQ1|||||||{start}||S",
        f"OBR|1|{placer}^RIS|{filler}^FACADE|MRBRAIN^MR Brain^L",
    ]
    for sps, modality, aets in ipcs:
        segments.append(
            f"IPC|{accession}^HOSP|RP-2|1.2.826.0.1.3680043.10.1.2|{sps}|{modality}"
            f"|P1^Protocol one^L|ST1|ROOM1|{aets}"
        )
    return CR.join(segments) + CR


def adt(
    event: str = "A08",
    *,
    msg_id: str = "ADT0001",
    patient_id: str = "PAT-1",
    name: str = "Doe^Jane",
    birth: str = "19700102",
    sex: str = "F",
    prior: str | None = None,
) -> str:
    """ADT^A01/A04/A08/A31, or ADT^A40 with `prior` (MRG-1) merged into `patient_id`."""
    structure = {"A40": "ADT_A39", "A08": "ADT_A01", "A31": "ADT_A05"}.get(event, "ADT_A01")
    segments = [
        f"MSH|^~\\&|ADT|HOSP|FACADE|HOSP|20261203101500||ADT^{event}^{structure}|{msg_id}|P|2.5.1",
        f"EVN|{event}|20261203101500",
        f"PID|||{patient_id}^^^HOSP^MR||{name}||{birth}|{sex}",
    ]
    if prior is not None:
        segments.append(f"MRG|{prior}^^^HOSP^MR")
    return CR.join(segments) + CR


def oru(
    status: str = "F",
    *,
    msg_id: str = "ORU0001",
    placer: str = "PLC-1",
    filler: str = "FIL-1",
    accession: str = "ACC-1",
    patient_id: str = "PAT-1",
    name: str = "Doe^Jane",
    findings: tuple[str, ...] = ("No acute intracranial abnormality.", "Ventricles normal in size."),
    impression: tuple[str, ...] = ("Normal CT head.",),
    study_uid: str | None = None,
    pdf: bytes | None = None,
    obx_status: str | None = None,
) -> str:
    """ORU^R01 v2.5.1 radiology report (reference §4): ORC RE, OBR with OBR-25, one TX OBX per
    line (&GDT findings, &IMP impression), optional 113014 study UID and ED PDF."""
    flag = obx_status or status
    segments = [
        f"MSH|^~\\&|RIS|HOSP|FACADE|HOSP|20261203153000||ORU^R01^ORU_R01|{msg_id}|P|2.5.1",
        f"PID|||{patient_id}^^^HOSP^MR||{name}||19700102|F",
        "PV1||O|RAD^^^HOSP",
        f"ORC|RE|{placer}^RIS|{filler}^FACADE||CM",
        f"OBR|1|{placer}^RIS|{filler}^FACADE|CTHEAD^CT Head^L|||20261203110500|||||||||||"
        f"{accession}||||20261203152900|||{status}|||||||1234&Reader&Rhea",
    ]
    n = 0
    for line in findings:
        n += 1
        segments.append(f"OBX|{n}|TX|&GDT^Findings||{line}||||||{flag}")
    for line in impression:
        n += 1
        segments.append(f"OBX|{n}|TX|&IMP^Impression||{line}||||||{flag}")
    if study_uid:
        n += 1
        segments.append(f"OBX|{n}|ST|113014^DICOM Study^DCM||{study_uid}||||||{flag}")
    if pdf is not None:
        import base64

        n += 1
        data = base64.b64encode(pdf).decode()
        segments.append(f"OBX|{n}|ED|PDF^Report^L||^application^pdf^Base64^{data}||||||{flag}")
    return CR.join(segments) + CR
