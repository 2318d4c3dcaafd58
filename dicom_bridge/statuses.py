"""DomainError -> DICOM status, one table for C-STORE (PS3.4 B.2.3) and STOW-RS Failure Reason
(PS3.18 10.5.3): A7xx out of resources, Cxxx cannot understand; 0xC001 is our "conflicts with
what is stored" (study of another patient, series of another study, target study mismatch)."""

from __future__ import annotations

from pydicom import Dataset

from storage.errors import Conflict, DomainError, Invalid, TooLarge, Unavailable

OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC000
CONFLICT = 0xC001
PROCESSING_FAILURE = 0x0110  # an internal error: ours, not the peer's
_STATUS: dict[type[DomainError], int] = {
    Unavailable: OUT_OF_RESOURCES,
    TooLarge: OUT_OF_RESOURCES,
    Invalid: CANNOT_UNDERSTAND,
    Conflict: CONFLICT,
}


def status_of(exc: DomainError) -> int:
    return _STATUS.get(type(exc), CANNOT_UNDERSTAND)


def failure(status: int, comment: str) -> Dataset:
    """A failure status with an Error Comment (0000,0902): LO, at most 64 characters."""
    rsp = Dataset()
    rsp.Status = status
    rsp.ErrorComment = comment[:64]
    return rsp
