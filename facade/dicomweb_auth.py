"""DICOMweb's token check, composed here from the resource-server check (`smart_auth`): the
DICOMweb app gets it by injection (`dicom_bridge.dicomweb.authorization.DicomwebAuthorization`)
and never imports `smart_auth` itself."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends

from dicom_bridge.dicomweb.authorization import MayRead
from smart_auth.resource_server.access import Access
from smart_auth.resource_server.guard import Guard, www_authenticate
from storage.errors import InsufficientScope, Unauthenticated
from storage.fhir_store.visibility import Visibility


class DicomwebTokens:
    """The same bearer tokens as /fhir: STOW-RS needs `c` on ImagingStudy (`Access.require_store`),
    WADO-RS `r`, QIDO-RS `s` (as a FHIR read or search of ImagingStudy), and each sees the
    studies whose ImagingStudy that read or search would show (`Access.visibility`: the patient
    compartment of patient/ scopes and of a patient user, granular scopes' criteria).

    The three are coroutines: deciding from an `Access` reads nothing (the visibility of a scope
    set is built once and cached), so they run on the event loop, not on the threadpool."""

    def __init__(self, guard: Guard) -> None:
        token = Depends(guard)  # a default, not an annotation: evaluated here, where `guard` is

        async def may_store(access: Access = token) -> None:
            access.require_store()

        async def may_read(access: Access = token) -> Visibility:
            access.require("ImagingStudy", "r")
            return access.visibility("r")

        async def may_search(access: Access = token) -> Visibility:
            access.require("ImagingStudy", "s")
            return access.visibility("s")

        self.may_store: Callable[..., object] = may_store
        self.may_read: MayRead = may_read
        self.may_search: MayRead = may_search

    def challenge(self, exc: Unauthenticated | InsufficientScope, realm: str) -> str:
        return www_authenticate(exc, realm)
