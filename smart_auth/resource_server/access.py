"""The resource-server decision: what one token may do and see (SMART scopes, FHIR compartments).

- `require(type, letter)` comes first in every route, before any data is read: the token must
  hold a scope with that permission on that type (`r` read / vread / instance history, `s`
  search, `c` create). Otherwise 403 insufficient_scope.
- `visibility(letter)` says which resources of each type the token sees; the search engine
  applies it in SQL (storage.fhir_store.visibility). Per scope that permits the letter, an alternative:
  * `system/`: the scope's own constraint only (the client was pre-authorised for it);
  * `user/`: a practitioner sees what the constraint allows; a patient user (fhirUser
    Patient/x) never more than their own compartment;
  * `patient/`: the launch patient's compartment (R4 CompartmentDefinition/patient: subject of
    an ImagingStudy, the Patient itself) AND the constraint; types outside the compartment
    (Endpoint, Practitioner) are not patient data and are seen whole.
  A granular scope (`?modality=...|CT`) becomes the same criteria a search would, so a search,
  a read, an `_include` and a count agree on what is visible.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache

from mapping.fhir.search_params import PATIENT_COMPARTMENT
from smart_auth.scopes import VERBS, ResourceScope, ScopeSet
from storage.errors import InsufficientScope, Invalid
from storage.fhir_store.criteria import Criterion
from storage.fhir_store.visibility import Visibility

CriteriaOf = Callable[[str, tuple[tuple[str, str], ...]], tuple[Criterion, ...]]
STORE_SCOPE = "system/ImagingStudy.c"  # the scope a refusal to store names (RFC 6750 3.1)


class VisibilityRules:
    """Builds (and caches) the Visibility of a scope set for a patient context and a letter."""

    def __init__(self, served: Iterable[str], criteria_of: CriteriaOf) -> None:
        self._served = tuple(served)
        self._criteria_of = criteria_of
        self.build = lru_cache(maxsize=4096)(self._build)

    def valid_query(self, res_type: str, query: tuple[tuple[str, str], ...]) -> bool:
        try:
            self._criteria_of(res_type, query)
        except Invalid:
            return False
        return True

    def _build(
        self, scopes: ScopeSet, patient: str | None, user_patient: str | None, letter: str
    ) -> Visibility:
        rules: dict[str, tuple[tuple[Criterion, ...], ...]] = {}
        for res_type in self._served:
            alternatives = []
            for scope in scopes.permitting(res_type, letter):
                alt = self._alternative(scope, res_type, patient, user_patient)
                if alt is not None:
                    alternatives.append(alt)
            if alternatives:
                rules[res_type] = tuple(alternatives)
        return Visibility(rules)

    def _alternative(
        self, scope: ResourceScope, res_type: str, patient: str | None, user_patient: str | None
    ) -> tuple[Criterion, ...] | None:
        if scope.context == "patient" and patient is None:
            return None  # a patient/ scope without a patient context grants nothing
        compartment_of = {"patient": patient, "user": user_patient}.get(scope.context)
        criteria = list(self._criteria_of(res_type, scope.query)) if scope.query else []
        if compartment_of is not None and res_type in PATIENT_COMPARTMENT:
            param = PATIENT_COMPARTMENT[res_type]
            value = compartment_of if param == "_id" else f"Patient/{compartment_of}"
            criteria += self._criteria_of(res_type, ((param, value),))
        return tuple(criteria)


@dataclass(frozen=True)
class Access:
    """One request's authorization: who (client, user), for whom (patient), with what scopes."""

    client_id: str | None
    user_id: str | None
    fhir_user: str | None  # "Practitioner/<id>" | "Patient/<id>"
    patient: str | None  # the launch context patient (bare id)
    scopes: ScopeSet
    rules: VisibilityRules

    @property
    def user_patient(self) -> str | None:
        kind, _, rid = (self.fhir_user or "").partition("/")
        return rid if kind == "Patient" else None

    def require(self, res_type: str, letter: str) -> None:
        """403 unless some scope grants `letter` on `res_type` (decided before any data access)."""
        usable = [
            s
            for s in self.scopes.permitting(res_type, letter)
            if s.context != "patient" or self.patient is not None
        ]
        if not usable:
            raise InsufficientScope(
                f"the token's scopes do not allow {VERBS.get(letter, letter)} of {res_type}",
                needed=f"user/{res_type}.{letter}",
            )

    def visibility(self, letter: str) -> Visibility:
        return self.rules.build(self.scopes, self.patient, self.user_patient, letter)

    def require_write(self, res_type: str, letter: str) -> None:
        """Create (`c`) or update (`u`) of a result: through a `user/` or `system/` scope without a
        granular query (a written resource is not checked against a query). A patient-facing app
        (a `patient/` scope, or a patient signed in) does not write results."""
        needed = f"user/{res_type}.{letter}"
        if self.user_patient is not None:
            raise InsufficientScope(f"a patient user cannot write {res_type}", needed=needed)
        usable = [
            s for s in self.scopes.permitting(res_type, letter) if s.context != "patient" and not s.query
        ]
        if not usable:
            raise InsufficientScope(
                f"the token's scopes do not allow {VERBS.get(letter, letter)} of {res_type} "
                "(writes need a user/ or system/ scope without a query)",
                needed=needed,
            )

    def require_store(self) -> None:
        """STOW-RS: `c` on ImagingStudy through a user/ or system/ scope. A patient/ scope cannot
        store: what arrives names its own patient, and a patient-facing app does not write to the
        archive."""
        if not any(s.context != "patient" for s in self.scopes.permitting("ImagingStudy", "c")):
            raise InsufficientScope(
                "storing instances needs user/ImagingStudy.c or system/ImagingStudy.c",
                needed=STORE_SCOPE,
            )
        if self.user_patient is not None:
            raise InsufficientScope("a patient user cannot store instances", needed=STORE_SCOPE)
