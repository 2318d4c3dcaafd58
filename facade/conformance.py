"""The DICOM conformance statement (PS3.2), generated from the code that negotiates and answers:
the AE `facade serve` builds, the statuses its handlers send, the C-FIND keys it matches.

`docs/conformance.md` is this module's output; a test fails when they differ, so the document
cannot drift from the code. Regenerate with `make conformance`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from pydicom.charset import python_encoding
from pydicom.datadict import tag_for_keyword
from pydicom.uid import UID

from dicom_bridge import find_responses, mpps_scp, remote, statuses, storage_scp
from dicom_bridge import sub_operations as subops
from dicom_bridge.ae import (
    MAX_CONTEXTS,
    MPPS,
    QUERY_FIND,
    QUERY_GET,
    QUERY_MOVE,
    UNCOMPRESSED_LE,
    VERIFICATION,
    WORKLIST_FIND,
    AeConfig,
    storage_ae,
)
from facade.settings import Settings
from mapping.dicom.matching import RANGE_VRS, WILDCARD_VRS
from mapping.dicom.query_keys import KEYS, MODEL_LEVELS, UNIQUE
from mapping.dicom.transcode import LOSSLESS, can_compress
from mapping.dicom.worklist import NOT_MATCHED, keyword_rows
from mapping.order.facts import OPEN_STEP_STATES

_INTRO = """\
# DICOM conformance statement

fhir-imaging-facade: an imaging archive whose studies are FHIR R4 resources. This statement
follows the outline of PS3.2 for the DICOM network services of `facade serve`. It is generated
by `facade/conformance.py` from the code that negotiates and answers (`make conformance`), and a
test fails when it differs from that code.

## 1. Network services

| Service | SOP classes | Role |
| --- | --- | --- |
| Verification | Verification SOP Class | SCP |
| Storage | {storage_count} storage SOP classes (appendix A) | SCP |
| Query/Retrieve FIND | Patient Root, Study Root Query/Retrieve Information Model - FIND | SCP |
| Query/Retrieve GET | Patient Root, Study Root Query/Retrieve Information Model - GET | SCP |
| Query/Retrieve MOVE | Patient Root, Study Root Query/Retrieve Information Model - MOVE | SCP |
| Basic Worklist Management | Modality Worklist Information Model - FIND (section 10) | SCP |
| Modality Performed Procedure Step | Modality Performed Procedure Step SOP Class (section 11) | SCP |
| Storage, within a C-GET | the storage SOP classes of appendix A, by SCP/SCU role selection | SCU |
| Storage, for a C-MOVE | the SOP classes of the instances moved, on an association we open | SCU |
| Verification, Query/Retrieve FIND, GET, MOVE (Study Root) | `facade remote` (section 9) | SCU |
| Storage, within our C-GET | the SOP classes of the retrieved studies, by SCP/SCU role selection | SCP |

Not yet offered: Storage Commitment.

## 2. Application entity

One AE, `FACADE` unless `FACADE_DICOM_AE_TITLE` says otherwise, listening on
`FACADE_DICOM_HOST`:`FACADE_DICOM_PORT` (default {host}:{port}), for every service above.

| Setting | Default | Behaviour |
| --- | --- | --- |
{ae_rows}
| Implementation Class UID | {impl_uid} | pynetdicom's |
| Implementation Version Name | {impl_version} | |

Asynchronous operations, SOP class extended negotiation and user identity negotiation are not
supported (not proposed back). DIMSE runs without TLS: keep the port on a trusted network, or
behind a TLS tunnel, and use the calling AE allow-list.

## 3. Association acceptance: presentation contexts

When a context proposes several transfer syntaxes we accept the first of ours, in this order:
uncompressed, Explicit VR before Implicit, then lossless compression, then lossy and video, so a
sender is never invited to compress lossily for us.

| Abstract syntax | Transfer syntaxes (in our order of preference) | Role |
| --- | --- | --- |
{contexts}
"""

_STORAGE = """
## 4. Storage SCP (C-STORE)

Every data set is stored as received (never transcoded or coerced) and indexed. The success
status is sent once the file and its name are fsynced and every refusal the index would make has
been made; the index follows in batches and is complete before the A-RELEASE-RP (what a crash
interrupts is indexed at the next start, before associations are accepted again). The same SOP
Instance UID with identical data set bytes is an idempotent success; different bytes replace the
stored instance (newest wins, recorded). A study keeps the patient it was first stored for: an
instance without Patient ID joins the study it names; one naming another patient is refused
(0xC001), or kept and recorded for `facade qa mismatches` when `FACADE_PATIENT_MISMATCH=accept`.

| Status | Meaning here |
| --- | --- |
| 0x0000 | Success: stored (or already stored, identical) |
{storage_statuses}

Failures carry an Error Comment (0000,0902). The association carries on after any failure.

An association that proposes only storage SOP classes, the C-FIND SOP classes below (Patient
Root, Study Root, Modality Worklist), the C-GET ones and Verification (and asks for an SCU role
of ours only with C-GET) is run by the facade's own association path, without polling
(`FACADE_DICOM_FAST_PATH`, on by default): negotiation, statuses, C-FIND responses, C-GET
sub-operations and counts, and timeouts are the same, except that a C-GET sub-operation we
cannot send is named in the Failed SOP Instance UID List (pynetdicom's path lists an empty UID).
On it, a P-DATA-TF PDU longer than our maximum PDU length, a malformed PDU or command set, an
unexpected PDU, an identifier over 1 MiB, or a new request while a C-FIND or C-GET is being
answered (no asynchronous operations window is granted) is answered with A-ABORT (service
provider); a message on a presentation context not accepted, with A-ABORT (service user), as on
every association; a C-CANCEL of the request being answered ends it with 0xFE00, another is
ignored; a DIMSE request other than C-STORE, C-FIND, C-GET and C-ECHO gets 0x0211
(unrecognized operation).
"""

_QUERY = """
## 5. Query SCP (C-FIND)

Information models and levels: {models}. Unique keys: {unique}. Keys of the levels above the one
asked need not be single values (relational-style queries are answered; extended negotiation of
relational queries is not offered). Keys we do not hold, sequences among them, and keys of
levels below the one asked are returned empty and match everything.

| Key | Tag | VR | Level | Matching |
| --- | --- | --- | --- | --- |
{keys}

Matching (PS3.4 C.2.2.2): single value (exact; PN ignoring case and trailing empty components,
by component group: a query without `=` matches any group), universal (empty or `*`), wildcard
(`*`, `?`) on {wildcard_vrs}, range on {range_vrs} (an hour bound covers the hour; an empty
stored value never matches a range; date and time are matched each alone, combined datetime
matching is not offered), lists of values (UIDs and others: any of them). Each response carries
the keys asked, the unique keys of its level and above, QueryRetrieveLevel and RetrieveAETitle.
Responses are sent as matches are read, a page at a time; a C-CANCEL is checked before each.

| Status | Meaning here |
| --- | --- |
{find_statuses}
"""

_GET = """
## 6. Retrieve SCP (C-GET)

Information models: Patient Root and Study Root - GET. The identifier names the instances by the
unique keys of its level and above (single values or lists, no wildcards; other keys are
ignored): the key of the level itself is required. The instances go as C-STORE sub-operations on
the same association, to a requestor that proposed SCP/SCU role selection for their storage SOP
classes. Each goes in its stored transfer syntax when the requestor accepted it for its SOP
class; else decoded (pydicom with pylibjpeg) or re-encoded into an uncompressed little endian
syntax it accepted; else encoded into a lossless compressed syntax it accepted, one of
{lossless}
(the SOP Instance UID kept; openjpeg refuses images under 32 pixels a side, and no encoder takes
pixel data without a lossless profile in PS3.5 8.2, such as 32-bit samples); never in one it did
not accept, never lossy; among contexts of equal rank the lowest context ID. The same choice on
both association paths (`FACADE_DICOM_FAST_PATH` true or false) and for C-MOVE. When a context
offers several transfer syntaxes we choose uncompressed first (our receiving preference): a
requestor that wants a compressed instance as stored proposes that syntax alone. An instance that
cannot be given so is a failed sub-operation. At most {max_subops} instances per request.

| Status | Meaning here |
| --- | --- |
{get_statuses}
"""

_MOVE = """
## 7. Retrieve SCP (C-MOVE) and the associations it opens

Information models: Patient Root and Study Root - MOVE; the identifier as for C-GET. The Move
Destination must be registered (`facade ae add NAME HOST PORT`): an unknown one is 0xA801,
and so is one that cannot be reached or accepts none of our contexts. We open one association
per request, as AE title `FACADE_DICOM_AE_TITLE`, proposing for each SOP class to send one
context of Explicit and Implicit VR Little Endian, one context for each compressed transfer
syntax the instances are stored in, then one context for each lossless syntax we encode into
(at most {max_contexts} contexts in all):
{lossless}.
Each instance goes as for C-GET: as stored when the destination accepted that, else decoded or
re-encoded into an uncompressed syntax it accepted, else encoded into a lossless syntax it
accepted; one that cannot be given so is a failed sub-operation. The C-STORE requests
carry the Move Originator AE title and Message ID. Statuses as for C-GET, and 0xA801.
"""

_CHARSETS = """
## 8. Character sets

Received data sets and query identifiers may use any of: {charsets}. Data sets are stored as
received. A C-FIND response whose values are all ASCII carries no Specific Character Set; else it
names the character set the instances were stored in when that set can hold every value of the
response (kanji and kana in all three PN groups in ISO 2022 IR 87, for instance), and ISO_IR 192
otherwise.
"""


_REMOTE = """
## 9. Association initiation: `facade remote` (query and retrieve from another archive)

`facade remote find|retrieve AE` opens associations to an AE registered with `facade ae add`,
as AE title `FACADE_DICOM_AE_TITLE`, proposing a maximum PDU of `FACADE_DICOM_MAX_PDU`; it waits
{connect_timeout:g} s for the connection and the association answer and {response_timeout:g} s for each
response (`--connect-timeout`, `--timeout`). A rejection, an abort, no answer or a failure
status ends the command with the reason; nothing is retried.

| Presentation context | Transfer syntaxes | Role |
| --- | --- | --- |
| {find} (`{find_uid}`) | {uncompressed} | SCU |
| {get} (`{get_uid}`) | {uncompressed} | SCU |
| {move} (`{move_uid}`) | {uncompressed} | SCU |
| {verification} (`{verification_uid}`), to our own listener before a C-MOVE | {uncompressed} | SCU |
{storage_rows}

C-FIND at STUDY level (then at SERIES level, one request per study) with the filters given and
the return keys of the `facade remote find` table; C-GET and C-MOVE at STUDY level, one Study
Instance UID each. Each C-STORE sub-operation of our C-GET is answered only after the instance
was stored and indexed (as in section 4), with its statuses; an instance of another study than
the one asked for is refused (0xC001). C-MOVE names our own AE title as the destination, whose
instances `facade serve` receives as in section 4.
"""

_WORKLIST = """
## 10. Modality Worklist SCP (C-FIND)

Modality Worklist Information Model - FIND (`{uid}`), on the same AE title
and port. Each scheduled procedure step of an order that HL7 brought in is one worklist item,
answered with a Scheduled Procedure Step Sequence of exactly one item. The keys of PS3.4 Table K.6-1 we hold:

| Key | Tag | VR | In | Matching |
| --- | --- | --- | --- | --- |
{keys}

Every key of this table is matched, required or optional: IHE RAD-5's patient-based query
(Patient's Name, Patient ID, Accession Number, Requested Procedure ID) and broad query (SPS
Start Date, Modality, Scheduled Station AE Title) included. Matching as in section 5: single
value, universal, wildcard, range, lists of values (UIDs and others); a stored empty value never
matches a key with a value. In addition:

- SPS Start Date and SPS Start Time, both given and one a range, are one datetime range
  (combined range matching: `20261202-20261203` with `1800-0600` is 18:00 on the first day to
  06:00 on the second).
- A sequence key with an item of keys matches when one stored item matches them all; an empty
  sequence key, or one with an empty item, matches everything and returns the whole sequence;
  a sequence key with keys in its item returns those keys of each item.
- Scheduled Station AE Title is multi-valued: a query for one title finds a step scheduled for
  several. With FACADE_WORKLIST_CALLING_AE_AS_STATION=true, a query that names none (absent or
  empty) is answered with the steps scheduled for the calling AE title.
- Person names ignore case (DCMTK's wlmscpfs does not).
- Without a SPS Status key, only the steps still open are answered:
  {open_states}. A SPS Status key asks for its steps, final ones included.

Each response carries the keys asked and nothing else (a key we do not hold, empty), and
Specific Character Set ISO_IR 192 when a value is not ASCII (the values are stored decoded).
Keys not in this table are ignored for matching and returned empty (PS3.4 K.2.2.1.1.2).
Responses are sent as matches are read, a page at a time; a C-CANCEL is checked before each.

| Status | Meaning here |
| --- | --- |
{statuses}
"""

_MPPS = """
## 11. Modality Performed Procedure Step SCP (N-CREATE, N-SET, N-GET)

Modality Performed Procedure Step SOP Class (`{uid}`), on the same AE title
and port, in the uncompressed transfer syntaxes. The MPPS Notification and the retired MPPS
Retrieve SOP classes are not offered (N-GET is answered on the MPPS SOP class). Each SOP
Instance is kept whole as the last N-SET left it, and answered only after it, the scheduled
procedure step it carries out and that order's FHIR ServiceRequest and Procedure are committed.

- N-CREATE (PS3.4 F.7.2.1): PPS Status must be IN PROGRESS; PPS Status, Scheduled Step
  Attributes Sequence (each item with a Study Instance UID) and PPS Start Date and Time must be
  present with a value. Without an Affected SOP Instance UID we assign one (2.25 + a UUID) and
  return it.
- N-SET (PS3.4 F.7.2.2): any attribute but those Table F.7.2-1 does not allow in an N-SET
  (the patient's, the Scheduled Step Attributes Sequence, the SOP Instance, PPS ID, start,
  station AE title, Modality, Study ID), which are ignored. PPS Status may be set to IN
  PROGRESS, COMPLETED or DISCONTINUED; COMPLETED and DISCONTINUED need PPS End Date and Time.
  After COMPLETED or DISCONTINUED the instance may no longer be updated.
- Each Scheduled Step Attributes Sequence item names a worklist entry by Scheduled Procedure
  Step ID, within the order its Study Instance UID, Accession Number and Requested Procedure ID
  name (an empty key does not decide). The entry's status follows: IN PROGRESS -> STARTED,
  COMPLETED -> COMPLETED, DISCONTINUED -> DISCONTINUED (a COMPLETED or CANCELED entry keeps its
  status; a new PPS restarts a DISCONTINUED one). An instance whose items name no known entry is
  kept as unscheduled; an N-SET links it once the entry has arrived.
- N-GET (PS3.7 10.1.2), from any calling AE title: the attributes the Attribute Identifier List
  names, as the last N-SET left them (an attribute the instance does not hold comes back
  empty), every attribute when the list is empty or absent; sequences whole. Specific Character
  Set as the N-CREATE sent it when it holds every value, else ISO_IR 192.

| Status | Meaning here |
| --- | --- |
{statuses}

Failures carry an Error Comment (0000,0902) naming the attribute at fault.
"""

_REJECTED = "A-ASSOCIATE-RJ"


def _ae_rows(defaults: dict[str, object], config: AeConfig) -> str:
    rows = [
        ("Maximum PDU received", f"{config.max_pdu} bytes", "`FACADE_DICOM_MAX_PDU`"),
        (
            "Called AE title",
            "must be ours",
            "`FACADE_DICOM_REQUIRE_CALLED_AET`; else "
            f"{_REJECTED} (permanent, called AE title not recognised)",
        ),
        (
            "Calling AE titles",
            "any",
            "`FACADE_DICOM_ALLOWED_CALLING_AETS` (comma-separated); others: "
            f"{_REJECTED} (permanent, calling AE title not recognised)",
        ),
        (
            "Associations at once",
            str(defaults["dicom_max_associations"]),
            f"`FACADE_DICOM_MAX_ASSOCIATIONS`; beyond: {_REJECTED} (transient, local limit exceeded)",
        ),
        (
            "Associations from one IP address",
            str(defaults["dicom_max_associations_per_peer"]),
            "`FACADE_DICOM_MAX_ASSOCIATIONS_PER_PEER`; beyond: as above",
        ),
        (
            "ARTIM (connection to A-ASSOCIATE-RQ)",
            f"{config.acse_timeout} s",
            "`FACADE_DICOM_ACSE_TIMEOUT`: the connection is closed",
        ),
        ("Idle association", f"{config.network_timeout} s", "`FACADE_DICOM_NETWORK_TIMEOUT`: A-ABORT"),
    ]
    return "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)


def statement() -> str:
    defaults = {name: f.default for name, f in Settings.model_fields.items()}
    config = AeConfig()
    ae = storage_ae(config)
    contexts = ae.supported_contexts
    services = (VERIFICATION, *QUERY_FIND, *QUERY_GET, *QUERY_MOVE, WORKLIST_FIND, MPPS)
    storage = [c for c in contexts if c.abstract_syntax not in services]
    other = [c for c in contexts if c.abstract_syntax in services]
    storage_syntaxes = _syntaxes(storage[0].transfer_syntax) if storage else ""
    rows = [
        f"| {_name(str(c.abstract_syntax))} (`{c.abstract_syntax}`) | {_syntaxes(c.transfer_syntax)} | SCP |"
        for c in other
    ]
    roles = "SCP; SCU as well for a requestor that proposes to be SCP (role selection, C-GET)"
    rows.append(f"| each storage SOP class of appendix A | {storage_syntaxes} | {roles} |")
    text = _INTRO.format(
        storage_count=len(storage),
        host=defaults["dicom_host"],
        port=defaults["dicom_port"],
        ae_rows=_ae_rows(defaults, config),
        impl_uid=ae.implementation_class_uid,
        impl_version=ae.implementation_version_name,
        contexts="\n".join(rows),
    )
    text += _STORAGE.format(storage_statuses=_statuses(_STORAGE_STATUSES))
    text += _QUERY.format(
        models="; ".join(
            f"{model.title()} Root: {' / '.join(levels)}" for model, levels in MODEL_LEVELS.items()
        ),
        unique=", ".join(f"{level} {keyword}" for level, keyword in UNIQUE.items()),
        keys="\n".join(_key_row(k.keyword, k.level, k.vr, k.matchable) for k in KEYS),
        wildcard_vrs=", ".join(sorted(WILDCARD_VRS)),
        range_vrs=", ".join(sorted(RANGE_VRS)),
        find_statuses=_statuses(_FIND_STATUSES),
    )
    lossless = _syntaxes(ts for ts in LOSSLESS if can_compress(ts))
    text += _GET.format(
        max_subops=subops.MAX_SUBOPERATIONS, get_statuses=_statuses(_GET_STATUSES), lossless=lossless
    )
    text += _MOVE.format(max_contexts=MAX_CONTEXTS, lossless=lossless)
    text += _CHARSETS.format(charsets=", ".join(f"`{c}`" for c in python_encoding if c))
    scu = remote.ScuConfig("FACADE")
    text += _REMOTE.format(
        connect_timeout=scu.connect_timeout,
        response_timeout=scu.response_timeout,
        find=_name(remote.STUDY_ROOT_FIND),
        find_uid=remote.STUDY_ROOT_FIND,
        get=_name(remote.STUDY_ROOT_GET),
        get_uid=remote.STUDY_ROOT_GET,
        move=_name(remote.STUDY_ROOT_MOVE),
        move_uid=remote.STUDY_ROOT_MOVE,
        verification=_name(VERIFICATION),
        verification_uid=VERIFICATION,
        uncompressed=_syntaxes(UNCOMPRESSED_LE),
        max_contexts=MAX_CONTEXTS,
        storage_rows=_remote_storage_rows(),
    )
    text += _WORKLIST.format(
        uid=WORKLIST_FIND,
        keys="\n".join(_worklist_row(keyword, vr, where) for keyword, vr, where in keyword_rows()),
        open_states=", ".join(OPEN_STEP_STATES),
        statuses=_statuses(_WORKLIST_STATUSES),
    )
    text += _MPPS.format(uid=MPPS, statuses=_statuses(_MPPS_STATUSES))
    text += "\n## Appendix A. Storage SOP classes\n\n| SOP class | UID |\n| --- | --- |\n"
    text += "\n".join(f"| {_name(str(c.abstract_syntax))} | `{c.abstract_syntax}` |" for c in storage)
    return text + "\n"


_STORAGE_STATUSES = {
    statuses.OUT_OF_RESOURCES: "Out of resources: free space below `FACADE_MIN_FREE_BYTES`, the "
    "database unavailable, a staging write failed",
    statuses.CANNOT_UNDERSTAND: "Cannot understand: unparseable or truncated data set, Study / "
    "Series / SOP Instance UID missing, a SOP Instance UID other than the request's or the file "
    "meta's, an Affected SOP Instance UID longer than 64 characters",
    statuses.CONFLICT: "Conflicts with what is stored: a known study of another patient, a known "
    "series of another study",
    storage_scp._BUG: "Internal error (ours); nothing was stored",
}
_FIND_STATUSES = {
    find_responses.PENDING: "Pending: one match",
    find_responses.SUCCESS: "Success: no more matches",
    find_responses.CANCEL: "Cancelled by the peer's C-CANCEL",
    find_responses.OUT_OF_RESOURCES: "Out of resources: the database is unavailable",
    find_responses.IDENTIFIER_MISMATCH: "Identifier does not match SOP class: a level the model lacks, a "
    "value its VR cannot take (a malformed date, a wildcard in a UID)",
    find_responses.UNABLE_TO_PROCESS: "Unable to process: an identifier that cannot be decoded; our "
    "own failures",
}

_WORKLIST_STATUSES = {
    find_responses.PENDING: "Pending: one scheduled procedure step",
    find_responses.SUCCESS: "Success: no more matches",
    find_responses.CANCEL: "Cancelled by the peer's C-CANCEL",
    find_responses.OUT_OF_RESOURCES: "Out of resources: the database is unavailable",
    find_responses.IDENTIFIER_MISMATCH: "Identifier does not match SOP class: a value its VR cannot "
    "take (a malformed date, a wildcard in a UID); the Error Comment names the key",
    find_responses.UNABLE_TO_PROCESS: "Unable to process: an identifier that cannot be decoded; our own "
    "failures",
}

_MPPS_STATUSES = {
    mpps_scp.SUCCESS: "Success: recorded (N-CREATE), changed (N-SET), returned (N-GET)",
    mpps_scp.ATTRIBUTE_LIST_ERROR: "Attribute list error (warning, N-GET): a tag in the Attribute "
    "Identifier List that is no attribute we know (private, group length, unknown), named in the "
    "response's Attribute Identifier List; the others are returned",
    mpps_scp.NO_SUCH_CLASS: "No such SOP Class: an N-GET naming another SOP class than MPPS",
    mpps_scp.INVALID_VALUE: "Invalid attribute value: an N-CREATE whose PPS Status is not IN PROGRESS; "
    "an N-SET to a status other than IN PROGRESS, COMPLETED, DISCONTINUED; a PPS Start or End Date "
    "or Time that is not a DA or TM",
    mpps_scp.PROCESSING_FAILURE: "Processing failure: an N-SET after COMPLETED or DISCONTINUED, with "
    f'Error ID 0x{mpps_scp.NO_LONGER_UPDATABLE:04X} and the comment "Performed Procedure Step Object '
    'may no longer be updated" (PS3.4 F.7.2.2.2); a data set that cannot be decoded; the database '
    "unavailable; our own failures",
    mpps_scp.DUPLICATE: "Duplicate SOP Instance: an N-CREATE of a SOP Instance UID created before",
    mpps_scp.NO_SUCH_INSTANCE: "No such SOP Instance: an N-SET or N-GET of a SOP Instance UID never created",
    mpps_scp.INVALID_INSTANCE: "Invalid object instance: a SOP Instance UID that is not a UID",
    mpps_scp.MISSING: "Missing attribute: an N-CREATE without PPS Status, Scheduled Step Attributes "
    "Sequence, PPS Start Date or Time",
    mpps_scp.MISSING_VALUE: "Missing attribute value: one of those empty, a scheduled step item "
    "without Study Instance UID; an N-SET to COMPLETED or DISCONTINUED while PPS End Date or End Time "
    "has no value (0x0120 is not an N-SET status, PS3.7 10.1.3)",
}

_GET_STATUSES = {
    subops.PENDING: "Pending: sub-operations continue",
    0x0000: "Success: every instance sent",
    0xB000: "Warning: some sub-operations failed (counts in the response)",
    0xA702: "Out of resources: no instance could be sent",
    subops.CANCEL: "Cancelled by the peer's C-CANCEL (counts so far)",
    subops.OUT_OF_RESOURCES: "Out of resources: the database is unavailable",
    subops.IDENTIFIER_MISMATCH: "Identifier does not match SOP class: a level the model lacks, no "
    "unique key of the level, a wildcard",
    subops.UNABLE_TO_PROCESS: f"Unable to process: more than {subops.MAX_SUBOPERATIONS} instances",
}


def _remote_storage_rows() -> str:
    role = "SCP (role selection proposed)"
    known = (
        "one context of the native (uncompressed) syntaxes, then one context for each other syntax we "
        f"accept as SCP (section 3), as many as {MAX_CONTEXTS} contexts allow"
    )
    common = len(remote.get_contexts()[1])
    return "\n".join(
        [
            f"| each storage SOP class the retrieved studies hold (SOP Classes in Study) | {known} | {role} |",  # noqa: E501
            f"| when the archive does not name them: pynetdicom's {common} common storage SOP classes "
            f"| every syntax we accept as SCP, in one context per class | {role} |",
        ]
    )


def _worklist_row(keyword: str, vr: str, where: str) -> str:
    tag = tag_for_keyword(keyword) or 0
    if keyword in NOT_MATCHED:
        kinds = ["returned only (not held yet)"]
    elif vr == "SQ":
        kinds = ["universal", "sequence"]
    else:
        kinds = ["universal", "single value", "list"]
        kinds += ["wildcard"] if vr in WILDCARD_VRS else []
        kinds += ["range"] if vr in RANGE_VRS else []
    place = "item" if not where else f"> {where}"
    return f"| {keyword} | ({tag >> 16:04X},{tag & 0xFFFF:04X}) | {vr} | {place} | {', '.join(kinds)} |"


def _key_row(keyword: str, level: str, vr: str, matchable: bool) -> str:
    tag = tag_for_keyword(keyword) or 0
    kinds = ["universal"]
    if matchable:
        kinds += ["single value", "list"]
        if vr in WILDCARD_VRS:
            kinds.append("wildcard")
        if vr in RANGE_VRS:
            kinds.append("range")
    else:
        kinds = ["returned only"]
    return f"| {keyword} | ({tag >> 16:04X},{tag & 0xFFFF:04X}) | {vr} | {level} | {', '.join(kinds)} |"


def _statuses(table: dict[int, str]) -> str:
    return "\n".join(f"| 0x{status:04X} | {meaning} |" for status, meaning in table.items())


def _syntaxes(uids: Iterable[str]) -> str:
    return ", ".join(f"{_name(str(u))} (`{u}`)" for u in uids)


def _name(uid: str) -> str:
    return UID(uid).name or uid


if __name__ == "__main__":
    sys.stdout.write(statement())
