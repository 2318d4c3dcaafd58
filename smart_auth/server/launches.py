"""EHR launch contexts (SMART App Launch 2.2, "EHR launch"): validated here, stored by `Sessions`;
created by POST /auth/launch and `facade launch create`."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from smart_auth.config import AuthConfig
from smart_auth.scopes import fhir_user_reference
from smart_auth.server.registry import Registry
from smart_auth.server.sessions import Sessions
from storage.errors import Invalid, NotFound
from storage.fhir_store.visibility import ALL
from storage.usecases.search import Search

USER_KINDS = ("Practitioner", "Patient")  # the users this server signs in


def create_launch(
    *, sessions: Sessions, registry: Registry, search: Search, config: AuthConfig, form: dict[str, str]
) -> dict[str, Any]:
    """Validate and store an EHR launch context; used by POST /auth/launch and `facade launch create`."""
    target = registry.client(form.get("client_id")) if form.get("client_id") else None
    if form.get("client_id") and target is None:
        raise Invalid("client_id is not a registered client")
    context: dict[str, Any] = {}
    patient = form.get("patient")
    if patient:
        try:
            search.read("Patient", patient, visibility=ALL)
        except NotFound:
            raise Invalid("patient is not a Patient id of this server") from None
        context["patient"] = patient
    for key in ("encounter", "intent", "smart_style_url"):
        if form.get(key):
            context[key] = form[key][:500]
    fhir_user = form.get("fhirUser")
    if fhir_user:
        reference = fhir_user_reference(fhir_user, USER_KINDS)
        if reference is None:
            raise Invalid("fhirUser is Practitioner/<id> or Patient/<id>")
        context["fhirUser"] = reference
    if "need_patient_banner" in form:
        context["need_patient_banner"] = form["need_patient_banner"].lower() in ("true", "1", "yes")
    launch = sessions.new_launch(
        context, client_id=target.client_id if target else None, lifetime=config.launch_seconds
    )
    out: dict[str, Any] = {"launch": launch, "iss": config.fhir_base, "expires_in": config.launch_seconds}
    if target is not None and target.launch_url:
        out["launch_url"] = f"{target.launch_url}?{urlencode({'iss': config.fhir_base, 'launch': launch})}"
    return out
