"""A pynetdicom requestor race, and the wait that avoids it.

pynetdicom pauses its association's reactor thread around every request it sends: it clears a
checkpoint, waits until `_is_paused` is true, sends, and reads the response. When one request
ends (the checkpoint set again) and the next begins before the reactor thread has run, that flag
is still true from the pause before: the next request goes ahead while the reactor is about to
resume, and the reactor may take the response off the queue first ("Received unexpected C-ECHO
service message", then a DIMSE timeout). It shows on a loaded machine only. Tests that send
requests back to back on one association wait for the reactor to have resumed in between.
"""

from __future__ import annotations

import time

from pynetdicom.association import Association


def reactor_resumed(assoc: Association, timeout: float = 2.0) -> None:
    """Until the reactor thread has passed its checkpoint since the last request ended (bounded)."""
    deadline = time.monotonic() + timeout
    while assoc._is_paused and time.monotonic() < deadline:
        time.sleep(0.0005)
