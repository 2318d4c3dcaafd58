"""The remote AEs we may connect to: C-MOVE destinations (an unknown destination is refused,
PS3.4 C.4.2.1.4: 0xA801) and the PACS `facade remote` queries. Administered by `facade ae`."""

from __future__ import annotations

from mapping.dicom.ae_title import ae_title_problem
from storage.clock import Clock, utcnow
from storage.db import Database
from storage.errors import Invalid
from storage.peers.store import PeerStore, RemoteAe

__all__ = ["Peers", "RemoteAe"]


class Peers:
    def __init__(self, db: Database, *, now: Clock = utcnow) -> None:
        self._store, self._now = PeerStore(db), now

    def add(self, ae_title: str, host: str, port: int) -> RemoteAe:
        """Register a remote AE; Invalid for a malformed title, host or port, Conflict when the
        title is registered already (remove it first: a destination never changes silently)."""
        problem = ae_title_problem(ae_title)
        if problem is not None:
            raise Invalid(problem)
        host = host.strip()
        if not host or len(host) > 255 or any(c.isspace() or c in "/\\" for c in host):
            raise Invalid("the host is a name or an IP address")
        if not 0 < port < 65536:
            raise Invalid("the port is 1 to 65535")
        peer = RemoteAe(ae_title.strip(), host, port)
        self._store.add(peer, self._now())
        return peer

    def remove(self, ae_title: str) -> bool:
        return self._store.remove(ae_title.strip())

    def get(self, ae_title: str) -> RemoteAe | None:
        return self._store.get(ae_title.strip())

    def all(self) -> list[RemoteAe]:
        return self._store.all()
