"""Domain errors shared by every adapter.

    DomainError            a request we refuse; the message is PHI-free and safe to show the peer
    ├── Invalid            the input is malformed or incomplete
    ├── NotFound           the thing asked for does not exist (or is not visible to the caller)
    │   └── Gone           it existed and was deleted
    ├── Conflict           the input contradicts what is stored
    ├── Forbidden          the caller may not do this
    ├── TooLarge           the input exceeds a configured size limit
    └── Unavailable        we cannot do it now (no room, database down); the peer may retry

Each adapter maps these to its protocol in one table (HTTP + OperationOutcome,
DIMSE status, HL7 ACK + ERR). Anything else is a bug.
"""


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


class Forbidden(DomainError):
    pass


class TooLarge(DomainError):
    pass


class Unavailable(DomainError):
    pass
