"""DICOMweb's token check, composed here from the resource-server check (`smart_auth`): the
DICOMweb app gets it by injection (`dicom_bridge.dicomweb.authorization.DicomwebAuthorization`)
and never imports `smart_auth` itself."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Depends

from smart_auth.resource_server.access import Access
from smart_auth.resource_server.guard import Guard, www_authenticate
from storage.errors import InsufficientScope, Unauthenticated
from storage.fhir_store.visibility import Visibility


class DicomwebTokens:
    """The same bearer tokens as /fhir; STOW-RS needs `c` on ImagingStudy (`Access.require_store`),
    WADO-RS `r` on ImagingStudy, and sees the studies whose ImagingStudy a FHIR read would show
    (`Access.visibility`: the patient compartment of patient/ scopes and of a patient user,
    granular scopes' criteria)."""

    def __init__(self, guard: Guard) -> None:
        token = Depends(guard)  # a default, not an annotation: evaluated here, where `guard` is

        def may_store(access: Access = token) -> None:
            access.require_store()

        def may_read(access: Access = token) -> Visibility:
            access.require("ImagingStudy", "r")
            return access.visibility("r")

        self.may_store: Callable[..., object] = may_store
        self.may_read: Callable[..., Visibility] = may_read

    def challenge(self, exc: Unauthenticated | InsufficientScope, realm: str) -> str:
        return www_authenticate(exc, realm)
