"""What DICOMweb is given to decide who may call it: the HTTP composition (`facade`) supplies it,
so this package never checks a token itself (docs/architecture.md: the guard belongs to the HTTP
composition).

PS3.18 8.5 leaves authorization to the origin server; RFC 6750 3 says how to refuse: 401 when
no usable token was sent (`Unauthenticated`), 403 when the token lacks the scope
(`InsufficientScope`), each with a Bearer challenge in WWW-Authenticate.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from storage.errors import InsufficientScope, Unauthenticated
from storage.usecases.retrieve import Visibility

# a FastAPI dependency (a function or a coroutine function) that decides and gives the Visibility
MayRead = Callable[..., Visibility | Awaitable[Visibility]]


class DicomwebAuthorization(Protocol):
    @property
    def may_store(self) -> Callable[..., object]:
        """A FastAPI dependency of every STOW-RS route, resolved before the body is read: returns
        when the request may store instances, raises `Unauthenticated` or `InsufficientScope`."""
        ...

    @property
    def may_read(self) -> MayRead:
        """A FastAPI dependency of every WADO-RS route, resolved before anything is read: the
        studies the caller may see (the FHIR read rules of their ImagingStudy: scopes, patient
        compartment), or `Unauthenticated` / `InsufficientScope`."""
        ...

    @property
    def may_search(self) -> MayRead:
        """The same for every QIDO-RS route: `s` on ImagingStudy (a FHIR search of ImagingStudy),
        and the studies such a search would show."""
        ...

    def challenge(self, exc: Unauthenticated | InsufficientScope, realm: str) -> str:
        """The WWW-Authenticate value for a refusal (RFC 6750 3)."""
        ...
