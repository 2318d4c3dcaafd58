"""Domain errors shared by every adapter.

    DomainError            a request we refuse; the message is PHI-free and safe to show the peer
    ├── Invalid            the input is malformed or incomplete
    ├── NotFound           the thing asked for does not exist (or is not visible to the caller)
    │   └── Gone           it existed and was deleted
    ├── Conflict           the input contradicts what is stored
    ├── Unauthenticated    no credential, or one that is not (or no longer) valid
    ├── Forbidden          the caller may not do this
    │   └── InsufficientScope   the credential is valid but its scopes do not allow this
    ├── TooLarge           the input exceeds a configured size limit
    └── Unavailable        we cannot do it now (no room, database down); the peer may retry

Each adapter maps these to its protocol in one table (HTTP + OperationOutcome,
DIMSE status, HL7 ACK + ERR). Anything else is a bug.
"""

from __future__ import annotations

import errno

_NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT})


def no_room(exc: OSError) -> bool:
    """A write failed for want of space (a full disk, or a quota): `Unavailable`, not a bug."""
    return exc.errno in _NO_ROOM


class DomainError(Exception):
    """A refusal with a message that contains no PHI."""


class Invalid(DomainError):
    pass


class NotFound(DomainError):
    pass


class Gone(NotFound):
    pass


class Conflict(DomainError):
    pass


class PreconditionFailed(DomainError):
    """A conditional request's condition does not hold (If-Match, several If-None-Exist matches)."""


class Unprocessable(DomainError):
    """Well-formed and valid, but against a business rule (a status change the lifecycle forbids)."""


class Unauthenticated(DomainError):
    """`presented`: a credential was sent (and refused), as opposed to none at all (RFC 6750 3.1)."""

    def __init__(self, message: str, *, presented: bool = False) -> None:
        super().__init__(message)
        self.presented = presented


class Forbidden(DomainError):
    pass


class InsufficientScope(Forbidden):
    """`needed`: the scope that would allow the request, for the WWW-Authenticate challenge."""

    def __init__(self, message: str, *, needed: str) -> None:
        super().__init__(message)
        self.needed = needed


class TooLarge(DomainError):
    pass


class Unavailable(DomainError):
    pass
