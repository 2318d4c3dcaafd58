"""The authorization endpoint and the consent decision (SMART App Launch steps 3 and 4).

`begin` validates a request (GET or POST): authlib checks client, exact redirect URI and
response type; an unknown client or redirect URI is answered with a page, never a redirect
(RFC 6749 4.1.2.1). Then SMART: `state` present, PKCE S256 required, `aud` equal to our FHIR
base (trailing slash aside), scopes filtered by the client's policy, an EHR `launch` resolved
(once) to its context. Other errors go back to the app with `error` and the exact `state`. A valid request
is held server-side until the user has signed in and decided.

`decide` turns the user's decision into a code: the scopes they left ticked (a literal subset
of those asked), the patient context (the launch's, the patient user's own, or the one picked),
fhirUser, banner and style. The code goes to the redirect URI with 303 (never 307).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from authlib.common.urls import add_params_to_uri
from authlib.oauth2.base import OAuth2Error

from smart_auth.config import AuthConfig
from smart_auth.scopes import ScopeSet, grantable
from smart_auth.server.adapter import FormRequest, SmartServer
from smart_auth.server.grants import PKCE_VALUE
from smart_auth.server.pages import PatientChoice
from smart_auth.server.registry import Client, User
from smart_auth.server.sessions import PendingRequest, Sessions
from storage.errors import NotFound
from storage.fhir_store.visibility import ALL
from storage.usecases.search import Search

_SINGLE = ("code_challenge", "code_challenge_method", "aud", "launch", "nonce")


@dataclass(frozen=True)
class Redirect:
    url: str


@dataclass(frozen=True)
class Refuse:
    message: str
    status: int = 400


@dataclass(frozen=True)
class Held:
    request: PendingRequest


@dataclass(frozen=True)
class ConsentView:
    client: Client
    scopes: list[str]
    patient_label: str | None
    pick_patient: bool
    choices: list[PatientChoice]


class Authorization:
    def __init__(
        self,
        server: SmartServer,
        sessions: Sessions,
        search: Search,
        config: AuthConfig,
        parse_scopes: Callable[[str | None], ScopeSet],
    ) -> None:
        self._server, self._sessions, self._search = server, sessions, search
        self._config, self._parse = config, parse_scopes

    # --- step 1: the request ----------------------------------------------------------------------

    def begin(self, request: FormRequest) -> Redirect | Refuse | Held:
        try:
            grant = self._server.get_consent_grant(request)
        except OAuth2Error as error:
            if error.redirect_uri:
                return Redirect(_error_uri(error.redirect_uri, error.error, error.description, error.state))
            return Refuse(error.description or error.error or "invalid request")
        client: Client = grant.request.client
        redirect_uri: str = grant.redirect_uri
        data, lists = request.payload.data, request.payload.datalist
        state = data.get("state")

        def fail(error: str, description: str) -> Redirect:
            return Redirect(_error_uri(redirect_uri, error, description, state))

        if any(len(lists.get(name, [])) > 1 for name in _SINGLE):
            return fail("invalid_request", "a parameter was repeated")
        if not state:
            return fail("invalid_request", "state is required (SMART App Launch, CSRF protection)")
        challenge, method = data.get("code_challenge"), data.get("code_challenge_method")
        if not challenge:
            return fail("invalid_request", "code_challenge is required (PKCE with S256)")
        if method != "S256":
            return fail("invalid_request", "code_challenge_method must be S256")
        if not PKCE_VALUE.match(challenge):
            return fail("invalid_request", "code_challenge is malformed")
        aud = data.get("aud") or data.get("resource")
        if aud is None or aud.rstrip("/") != self._config.fhir_base.rstrip("/"):
            return fail("invalid_request", "aud must be the FHIR base URL of this server")
        requested = self._parse(data.get("scope"))
        launch_id = data.get("launch")
        context: dict[str, Any] | None = None
        if launch_id is not None:
            if not requested.launch:
                return fail("invalid_scope", "an EHR launch asks for the launch scope")
            context = self._sessions.peek_launch(launch_id, client.client_id)
            if context is None:
                return fail("invalid_request", "the launch is unknown, expired or used")
        elif requested.launch:
            return fail("invalid_request", "the launch scope needs the launch parameter of an EHR launch")
        granted = grantable(requested, self._parse(client.scope), ehr_launch=context is not None)
        if not granted:
            return fail("invalid_scope", "none of the requested scopes can be granted to this client")
        if launch_id is not None and not self._sessions.use_launch(launch_id):
            return fail("invalid_request", "the launch is unknown, expired or used")
        held = self._sessions.hold(
            client.client_id,
            {
                "redirect_uri": redirect_uri,
                "state": state,
                "scope": granted,
                "code_challenge": challenge,
                "nonce": data.get("nonce"),
                "launch": context,
            },
            self._config.request_seconds,
        )
        return Held(held)

    # --- step 2: consent --------------------------------------------------------------------------

    def view(self, pending: PendingRequest, user: User, query: str = "") -> ConsentView | Refuse:
        client = self._server.registry.client(pending.client_id)
        if client is None:
            return Refuse("the application is no longer registered")
        problem = self._launch_problem(pending, user)
        if problem:
            return Refuse(problem, 403)
        patient = self._fixed_patient(pending, user)
        pick = patient is None and self._needs_patient(pending.params["scope"])
        return ConsentView(
            client,
            list(pending.params["scope"]),
            self._label(patient) if patient else None,
            pick,
            self._choices(query) if pick else [],
        )

    def decide(
        self,
        pending: PendingRequest,
        user: User,
        *,
        allow: bool,
        selected: list[str],
        picked_patient: str | None,
    ) -> Redirect | Refuse | str:
        """A redirect to the app, a refusal page, or (a str) a problem to show on the consent page."""
        params = pending.params
        redirect_uri, state = params["redirect_uri"], params.get("state")
        problem = self._launch_problem(pending, user)
        if problem:
            return Refuse(problem, 403)
        chosen = [s for s in params["scope"] if s in set(selected)]
        if not allow or not chosen:
            if not self._sessions.finish(pending.id):
                return Refuse("this request was answered already")
            return Redirect(_error_uri(redirect_uri, "access_denied", "the user denied access", state))
        patient = self._fixed_patient(pending, user)
        if patient is None and self._needs_patient(chosen):
            if not picked_patient:
                return "Choose the patient whose data the application may use."
            try:
                self._search.read("Patient", picked_patient, visibility=ALL)
            except NotFound:
                return "That patient is not known here."
            patient = picked_patient
        if not self._sessions.finish(pending.id):
            return Refuse("this request was answered already")
        launch = params.get("launch") or {}
        context: dict[str, Any] = {"fhirUser": user.fhir_user}
        if patient is not None and (self._needs_patient(chosen) or launch.get("patient")):
            context["patient"] = patient
            context["need_patient_banner"] = bool(launch.get("need_patient_banner", True))
        if launch.get("encounter") and ("launch" in chosen or "launch/encounter" in chosen):
            context["encounter"] = launch["encounter"]
        if launch.get("intent"):
            context["intent"] = launch["intent"]
        context["smart_style_url"] = (
            launch.get("smart_style_url") or f"{self._config.auth_base}/smart-style.json"
        )
        grant = self._server.tokens.new_grant(
            client_id=pending.client_id, user_id=user.id, scope=" ".join(chosen), context=context
        )
        code = self._server.tokens.new_code(
            grant,
            redirect_uri=redirect_uri,
            code_challenge=params["code_challenge"],
            nonce=params.get("nonce"),
            lifetime=self._config.code_seconds,
        )
        pairs = [("code", code)] + ([("state", state)] if state is not None else [])
        return Redirect(str(add_params_to_uri(redirect_uri, pairs)))

    # --- helpers ----------------------------------------------------------------------------------

    def _launch_problem(self, pending: PendingRequest, user: User) -> str | None:
        launch = pending.params.get("launch") or {}
        if launch.get("fhirUser") and launch["fhirUser"] != user.fhir_user:
            return "This launch was made for another user. Sign in as that user, or relaunch from the EHR."
        if user.patient and launch.get("patient") and launch["patient"] != user.patient:
            return "This launch is for another patient."
        return None

    def _fixed_patient(self, pending: PendingRequest, user: User) -> str | None:
        launch = pending.params.get("launch") or {}
        return user.patient or launch.get("patient")

    def _needs_patient(self, scopes: list[str]) -> bool:
        parsed = self._parse(" ".join(scopes))
        return "patient" in parsed.launch_context or "patient" in parsed.contexts()

    def _label(self, patient_id: str) -> str:
        try:
            found = self._search.read("Patient", patient_id, visibility=ALL)
        except NotFound:
            return f"Patient/{patient_id}"
        return patient_label(found.body or {}, patient_id)

    def _choices(self, query: str) -> list[PatientChoice]:
        pairs = [("_count", "20"), ("_sort", "family")]
        if query.strip():
            pairs.append(("name", query.strip()))
        result = self._search.search(self._search.parse("Patient", pairs), visibility=ALL)
        return [PatientChoice(r.res_id, patient_label(r.body or {}, r.res_id)) for r in result.matches]


def patient_label(body: dict[str, Any], patient_id: str) -> str:
    names = body.get("name") or [{}]
    name = names[0]
    text = name.get("text") or " ".join([*name.get("given", []), name.get("family", "")]).strip()
    born = body.get("birthDate")
    mrn = next((i.get("value") for i in body.get("identifier", []) if i.get("value")), None)
    parts = [text or "(no name)"]
    if born:
        parts.append(f"born {born}")
    if mrn:
        parts.append(f"ID {mrn}")
    return str(", ".join(parts))


def _error_uri(redirect_uri: str, error: str | None, description: str | None, state: str | None) -> str:
    pairs = [("error", error or "invalid_request")]
    if description:
        pairs.append(("error_description", description))
    if state is not None:
        pairs.append(("state", state))
    return str(add_params_to_uri(redirect_uri, pairs))
