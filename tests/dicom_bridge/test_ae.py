"""The AE `facade serve` starts: each association gets contexts of its own, copied cheaply."""

from __future__ import annotations

import copy

from pynetdicom import AE

from dicom_bridge.ae import AeConfig, start_server, storage_ae


def test_each_association_gets_its_own_contexts() -> None:
    server = start_server(storage_ae(AeConfig()), ("127.0.0.1", 0), [])
    try:
        shared = server.contexts
        mine = copy.deepcopy(shared)  # what pynetdicom does for every association it accepts
        assert len(mine) == len(shared) > 170
        for ours, theirs in zip(mine, shared, strict=True):
            assert ours is not theirs and ours.transfer_syntax is not theirs.transfer_syntax
            assert (ours.abstract_syntax, ours.transfer_syntax) == (
                theirs.abstract_syntax,
                theirs.transfer_syntax,
            )
        mine[0]._transfer_syntax.append("1.2.3")
        assert "1.2.3" not in shared[0]._transfer_syntax
        ae = AE(ae_title="TESTSCU")
        ae.add_requested_context("1.2.840.10008.1.1")
        assoc = ae.associate("127.0.0.1", server.server_address[1], ae_title="FACADE")
        assert assoc.is_established and assoc.send_c_echo().Status == 0x0000
        assoc.release()
    finally:
        server.shutdown()
