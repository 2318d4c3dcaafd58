"""pynetdicom's threaded association server, on a listening socket it is handed or binds itself.

`facade serve --workers N` binds the DICOM port once in the parent and hands the listening socket
to each serving child (`facade.processes`). pynetdicom's server binds in its constructor; the
socketserver hooks `server_bind` and `server_activate` are where a subclass adopts a socket
instead (`AE.make_server(..., server_class=...)`, public API, passes it the `listening` keyword).

pynetdicom's server also runs a full `gc.collect()` from its accept loop every 60 wakes (each
connection, and each half-second idle): in a serving process that walks ~200,000 objects, 100 ms
and more with the GIL held, stalling every association and HTTP request of the process at that
moment. `service_actions` leaves collection to the interpreter's own collector, which finds the
same cycles.
"""

from __future__ import annotations

import socket
from typing import Any

from pynetdicom.transport import ThreadedAssociationServer


class ListeningServer(ThreadedAssociationServer):
    def __init__(self, *args: Any, listening: socket.socket | None = None, **kwargs: Any) -> None:
        self._listening = listening
        super().__init__(*args, **kwargs)

    def server_bind(self) -> None:
        if self._listening is None:
            super().server_bind()
            return
        if self.socket is not None:
            self.socket.close()  # the one socketserver made, never bound
        self.socket = self._listening
        if self.ae.network_timeout is not None:  # as pynetdicom sets on the socket it binds
            self.socket.settimeout(self.ae.network_timeout)
        self.server_address = self.socket.getsockname()

    def service_actions(self) -> None:
        """Called by socketserver's loop after each wake: nothing to do (see the module's doc)."""

    def server_activate(self) -> None:
        if self._listening is None:
            super().server_activate()
