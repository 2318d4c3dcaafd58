"""The facade's own C-STORE receive path, bare, for the benchmark: `dicom_bridge.fast_server`
and `fast_association` as `facade serve` runs them (negotiation, PDUs, the command set, the data
set written as it arrives into a staged file), with an ingest that only renames each file into
a folder: no header read, no fsync, no index. The ceiling of what our receive path alone allows,
beside the bare pynetdicom SCP (`bench.bare_scp`), which writes files and nothing else.

python -m bench.bare_fast DIR PORT MAX_PDU
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from dicom_bridge.ae import AeConfig, storage_ae
from dicom_bridge.storage_scp import StorageScp
from storage.usecases.ingest import Staging


class RenamingIngest:
    """What `StorageScp` and the fast path ask of `Ingest`, and nothing more."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        (folder / ".staging").mkdir(parents=True, exist_ok=True)

    @contextmanager
    def staging(self, *, in_place: bool = False) -> Iterator[Staging]:  # in_place: no slots here
        staging = Staging(self._folder / ".staging")
        try:
            yield staging
        finally:
            staging.close()

    def accept(self, staging: Staging, _source: object, expect: Any) -> None:
        staging.close()
        os.rename(staging.path, self._folder / f"{expect.sop_instance_uid}.dcm")

    def drain(self, _timeout: float | None = None) -> bool:
        return True


def main() -> None:
    folder, port, max_pdu = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    ae = storage_ae(AeConfig(ae_title="BARE", max_pdu=max_pdu))
    handlers = StorageScp(cast(Any, RenamingIngest(folder))).handlers()
    # block=False: pynetdicom's blocking start_server does not build its server by `make_server`,
    # so it would not be ours
    server = ae.start_server(("127.0.0.1", port), block=False, evt_handlers=handlers)
    print(type(server).__name__, flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        server.shutdown()


if __name__ == "__main__":
    main()
