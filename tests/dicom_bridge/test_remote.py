"""The presentation contexts our C-GET proposes (`dicom_bridge.remote.get_contexts`); the
associations themselves are tested against a second facade in tests/facade/test_remote.py."""

from __future__ import annotations

from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, RLELossless
from pynetdicom import AllStoragePresentationContexts

from dicom_bridge.ae import MAX_CONTEXTS, preferred_transfer_syntaxes
from dicom_bridge.remote import STUDY_ROOT_GET, get_contexts

MR, CT = "1.2.840.10008.5.1.4.1.1.4", "1.2.840.10008.5.1.4.1.1.2"


def test_known_classes_get_a_context_per_compressed_syntax() -> None:
    contexts, roles = get_contexts([MR, CT, MR])
    assert contexts[0].abstract_syntax == STUDY_ROOT_GET
    assert [r.sop_class_uid for r in roles] == [MR, CT]
    assert all(r.scp_role and not r.scu_role for r in roles)
    mr = [list(c.transfer_syntax) for c in contexts if c.abstract_syntax == MR]
    assert ExplicitVRLittleEndian in mr[0] and RLELossless not in mr[0]
    assert [RLELossless] in mr and [JPEGBaseline8Bit] in mr
    offered = {ts for syntaxes in mr for ts in syntaxes}
    assert offered == {str(ts) for ts in preferred_transfer_syntaxes()}, "every syntax we accept as SCP"
    assert len(contexts) <= MAX_CONTEXTS


def test_many_classes_stay_within_128_contexts() -> None:
    classes = [str(c.abstract_syntax) for c in AllStoragePresentationContexts]
    contexts, roles = get_contexts(classes)
    assert len(contexts) == MAX_CONTEXTS and len(roles) == MAX_CONTEXTS - 1


def test_unknown_classes_propose_the_common_ones_with_every_syntax() -> None:
    contexts, roles = get_contexts()
    assert len(contexts) == len(roles) + 1 <= MAX_CONTEXTS
    assert all(len(c.transfer_syntax) == len(preferred_transfer_syntaxes()) for c in contexts[1:])
