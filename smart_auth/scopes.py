"""SMART App Launch 2.2 scopes (scopes-and-launch-context): parsing, narrowing, permission checks.

Pure: strings in, frozen values out.

    clinical  = ("patient"|"user"|"system") "/" (Type|"*") "." perms ["?" p "=" v *("&" p "=" v)]
    perms     = v2: an ordered, non-empty subset of "cruds";  v1: "read" | "write" | "*"
    context   = "launch" | "launch/patient" | "launch/encounter"
    identity  = "openid" | "fhirUser";  refresh = "offline_access" | "online_access"

A scope that does not parse (undefined or out-of-order permissions such as `.sr`,
modifiers or chains in a granular query, a query on `*`) or names a type we do not
serve is *dropped*, never widened (SC "Scope Equivalence"). v1 `read` means `rs`,
`write` means `cud`, `*` means `cruds`; the granted text is kept exactly as asked
so that refresh narrowing can return a literal subset (Inferno token_refresh_body).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Literal

Context = Literal["patient", "user", "system"]
Letter = Literal["c", "r", "u", "d", "s"]

URI_PREFIX = "http://smarthealthit.org/fhir/scopes/"
_CLINICAL = re.compile(r"^(patient|user|system)/([A-Za-z]+|\*)\.([a-z*]+)(?:\?(.*))?$")
V1_PERMS = {"read": "rs", "write": "cud", "*": "cruds"}
_ORDER = "cruds"
VERBS = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}  # SMART v2 letters
IDENTITY = frozenset({"openid", "fhirUser", "profile"})
REFRESH = frozenset({"offline_access", "online_access"})
LAUNCH_CONTEXTS = frozenset({"patient", "encounter"})


@dataclass(frozen=True)
class ResourceScope:
    """One clinical scope, e.g. `patient/ImagingStudy.rs?modality=http://...|CT`."""

    text: str
    context: Context
    res_type: str  # a resource type, or "*"
    perms: frozenset[str]
    query: tuple[tuple[str, str], ...]  # granular constraint, FHIR search syntax
    v1: bool

    def permits(self, res_type: str, letter: str) -> bool:
        return letter in self.perms and self.res_type in ("*", res_type)


@dataclass(frozen=True)
class ScopeSet:
    """A parsed scope string; `texts` keeps every understood scope, in the order given."""

    texts: tuple[str, ...]
    resources: tuple[ResourceScope, ...]
    launch: bool = False  # the EHR-launch `launch` scope
    launch_context: frozenset[str] = frozenset()  # from launch/patient, launch/encounter
    openid: bool = False
    fhir_user: bool = False
    offline: bool = False
    online: bool = False

    def __str__(self) -> str:
        return " ".join(self.texts)

    @property
    def wants_refresh(self) -> bool:
        return self.offline or self.online

    def contexts(self) -> frozenset[str]:
        return frozenset(s.context for s in self.resources)

    def permits(self, res_type: str, letter: str) -> bool:
        return any(s.permits(res_type, letter) for s in self.resources)

    def permitting(self, res_type: str, letter: str) -> tuple[ResourceScope, ...]:
        return tuple(s for s in self.resources if s.permits(res_type, letter))


QueryCheck = Callable[[str, tuple[tuple[str, str], ...]], bool]


def parse_resource_scope(
    text: str, *, served: Iterable[str], valid_query: QueryCheck
) -> ResourceScope | None:
    """A clinical scope, or None when it is not one we can honour exactly."""
    body = text[len(URI_PREFIX) :] if text.startswith(URI_PREFIX) else text
    m = _CLINICAL.match(body)
    if m is None:
        return None
    context, res_type, perms_text, query_text = m.group(1), m.group(2), m.group(3), m.group(4)
    if res_type != "*" and res_type not in set(served):
        return None
    v1 = perms_text in V1_PERMS
    perms = V1_PERMS.get(perms_text) or _v2_perms(perms_text)
    if perms is None:
        return None
    query: tuple[tuple[str, str], ...] = ()
    if query_text is not None:
        if res_type == "*" or not query_text:
            return None
        pairs = []
        for item in query_text.split("&"):
            name, eq, value = item.partition("=")
            if not eq or not name or not value or ":" in name or "." in name or name.startswith("_"):
                return None  # modifiers, chains and _filter are experimental: refused
            pairs.append((name, value))
        query = tuple(pairs)
        if not valid_query(res_type, query):
            return None
    return ResourceScope(text, context, res_type, frozenset(perms), query, v1)  # type: ignore[arg-type]


def _v2_perms(text: str) -> str | None:
    positions = [_ORDER.find(ch) for ch in text]
    if not text or -1 in positions or positions != sorted(set(positions)):
        return None
    return text


def parse_scopes(text: str | None, *, served: Iterable[str], valid_query: QueryCheck) -> ScopeSet:
    """Every scope of `text` we understand; the rest is dropped silently (SC)."""
    served = tuple(served)
    texts: list[str] = []
    resources: list[ResourceScope] = []
    flags = {"launch": False, "openid": False, "fhir_user": False, "offline": False, "online": False}
    contexts: set[str] = set()
    for item in dict.fromkeys((text or "").split()):
        if item == "launch":
            flags["launch"] = True
        elif item.startswith("launch/") and item[7:] in LAUNCH_CONTEXTS:
            contexts.add(item[7:])
        elif item == "openid":
            flags["openid"] = True
        elif item == "fhirUser":
            flags["fhir_user"] = True
        elif item == "offline_access":
            flags["offline"] = True
        elif item == "online_access":
            flags["online"] = True
        elif item == "profile":
            pass  # OpenID `profile` is accepted and granted; it adds no claim we do not send anyway
        else:
            scope = parse_resource_scope(item, served=served, valid_query=valid_query)
            if scope is None:
                continue
            resources.append(scope)
        texts.append(item)
    return ScopeSet(
        tuple(texts),
        tuple(resources),
        launch=flags["launch"],
        launch_context=frozenset(contexts),
        openid=flags["openid"],
        fhir_user=flags["fhir_user"],
        offline=flags["offline"],
        online=flags["online"],
    )


def narrowed(granted: str, asked: str | None) -> str | None:
    """The scope string of a refresh: all of `granted` when nothing is asked, else `asked` when every
    one of its scopes was granted literally, else None (RFC 6749 6: never more than granted)."""
    if not asked or not asked.strip():
        return granted
    have = set(granted.split())
    want = list(dict.fromkeys(asked.split()))
    return " ".join(want) if all(s in have for s in want) else None


def allowed_by(policy: ScopeSet, scope: ResourceScope) -> bool:
    """Whether a client's registered policy covers `scope`: same context, a covering type and
    every permission; a granular policy covers only the same constraint."""
    for p in policy.resources:
        if p.context != scope.context or p.res_type not in ("*", scope.res_type):
            continue
        if not scope.perms <= p.perms:
            continue
        if p.query and p.query != scope.query:
            continue
        return True
    return False


def is_system(text: str) -> bool:
    """Whether a scope string is a `system/` scope (plain or in its URI form), parsable or not."""
    body = text[len(URI_PREFIX) :] if text.startswith(URI_PREFIX) else text
    return body.startswith("system/")


def without_system(scope: str) -> str:
    """`scope` minus its `system/` scopes: what a user-facing (authorization code) grant may carry."""
    return " ".join(t for t in scope.split() if not is_system(t))


def grantable(requested: ScopeSet, policy: ScopeSet, *, ehr_launch: bool) -> list[str]:
    """The requested scopes a client's policy allows, in the order asked, for the authorization
    code flow: never a `system/` scope (Backend Services only), whatever the policy says.
    `online_access` is for EHR launches only (SMART 2.2); a `launch/...` context scope needs the
    policy to list it."""
    allowed: list[str] = []
    resources = {s.text: s for s in requested.resources}
    for text in requested.texts:
        if text in resources:
            if resources[text].context != "system" and allowed_by(policy, resources[text]):
                allowed.append(text)
        elif text == "online_access" and not ehr_launch:
            continue
        elif text in policy.texts:
            allowed.append(text)
    return allowed


def fhir_user_reference(value: str, kinds: Collection[str]) -> str | None:
    """`Kind/id` of a fhirUser (a launch parameter or a token claim; relative or absolute URL,
    SMART App Launch "fhirUser"), or None when it names no resource of one of `kinds`."""
    parts = value.rstrip("/").split("/")
    if len(parts) < 2 or parts[-2] not in kinds or not parts[-1]:
        return None
    return f"{parts[-2]}/{parts[-1]}"
