"""A bare pynetdicom storage SCP for the benchmark: writes each data set to a file, nothing else.

python -m bench.bare_scp DIR PORT MAX_PDU
"""

from __future__ import annotations

import sys
from pathlib import Path

from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.events import Event
from pynetdicom.sop_class import Verification


def main() -> None:
    folder, port, max_pdu = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    folder.mkdir(parents=True, exist_ok=True)

    def on_store(event: Event) -> int:
        uid = event.request.AffectedSOPInstanceUID
        (folder / f"{uid}.dcm").write_bytes(event.encoded_dataset())
        return 0x0000

    ae = AE(ae_title="BARE")
    ae.maximum_pdu_size = max_pdu
    ae.supported_contexts = AllStoragePresentationContexts
    ae.add_supported_context(Verification)
    ae.start_server(("127.0.0.1", port), block=True, evt_handlers=[(evt.EVT_C_STORE, on_store)])


if __name__ == "__main__":
    main()
