"""Discovery documents: `/fhir/.well-known/smart-configuration` (SMART App Launch 2.2
conformance), `/fhir/.well-known/openid-configuration` (OpenID Connect Discovery 1.0, our
issuer being the FHIR base), and the security block of the CapabilityStatement with the
oauth-uris extension (SMART 1.0; fhirclient reads only this). All URLs are absolute.
"""

from __future__ import annotations

from typing import Any

from smart_auth.config import AuthConfig, ExternalAuthConfig
from smart_auth.server.client_assertion import ALGORITHMS
from smart_auth.server.keys import ALG

CAPABILITIES = [
    "launch-ehr",
    "launch-standalone",
    "authorize-post",
    "client-public",
    "client-confidential-symmetric",
    "client-confidential-asymmetric",
    "sso-openid-connect",
    "context-banner",
    "context-style",
    "context-ehr-patient",
    "context-ehr-encounter",
    "context-standalone-patient",
    "permission-offline",
    "permission-patient",
    "permission-user",
    "permission-v1",
    "permission-v2",
]
SCOPES = [
    "openid",
    "fhirUser",
    "profile",
    "launch",
    "launch/patient",
    "launch/encounter",
    "offline_access",
    "online_access",
    "patient/*.rs",
    "patient/*.read",
    "user/*.rs",
    "user/*.read",
    "system/*.rs",
    "system/*.read",
    "patient/ImagingStudy.rs",
    "patient/Patient.rs",
    "user/ImagingStudy.rs",
    "user/ImagingStudy.c",
    "system/ImagingStudy.c",
]
_SECURITY_SERVICE = {
    "coding": [
        {
            "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
            "code": "SMART-on-FHIR",
        }
    ],
    "text": "OAuth2 using SMART-on-FHIR profile (see http://docs.smarthealthit.org)",
}
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"


def smart_configuration(config: AuthConfig) -> dict[str, Any]:
    auth = config.auth_base
    return {
        "issuer": config.issuer,
        "jwks_uri": f"{auth}/jwks",
        "authorization_endpoint": f"{auth}/authorize",
        "token_endpoint": config.token_url,
        "token_endpoint_auth_methods_supported": [
            "private_key_jwt",
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "token_endpoint_auth_signing_alg_values_supported": list(ALGORITHMS),
        "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
        "scopes_supported": SCOPES,
        "response_types_supported": ["code"],
        "management_endpoint": f"{auth}/manage",
        "introspection_endpoint": f"{auth}/introspect",
        "revocation_endpoint": f"{auth}/revoke",
        "capabilities": CAPABILITIES,
        "code_challenge_methods_supported": ["S256"],
    }


def openid_configuration(config: AuthConfig) -> dict[str, Any]:
    auth = config.auth_base
    return {
        "issuer": config.issuer,
        "authorization_endpoint": f"{auth}/authorize",
        "token_endpoint": config.token_url,
        "jwks_uri": f"{auth}/jwks",
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [ALG],
        "scopes_supported": ["openid", "fhirUser", "profile", "offline_access", "online_access"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nonce", "fhirUser"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_basic", "none"],
        "code_challenge_methods_supported": ["S256"],
    }


def security(config: AuthConfig) -> dict[str, Any]:
    """CapabilityStatement.rest.security."""
    auth = config.auth_base
    return {
        "extension": [
            {
                "url": OAUTH_URIS,
                "extension": [
                    {"url": "authorize", "valueUri": f"{auth}/authorize"},
                    {"url": "token", "valueUri": config.token_url},
                    {"url": "introspect", "valueUri": f"{auth}/introspect"},
                    {"url": "revoke", "valueUri": f"{auth}/revoke"},
                    {"url": "manage", "valueUri": f"{auth}/manage"},
                ],
            }
        ],
        "cors": True,
        "service": [_SECURITY_SERVICE],
        "description": "SMART App Launch 2.2 (EHR and standalone launch, v1 and v2 scopes) and Backend "
        "Services. Every request but this statement and the discovery documents needs a bearer token.",
    }


def external_smart_configuration(config: ExternalAuthConfig) -> dict[str, Any]:
    """What we can truthfully say when another server issues the tokens."""
    doc: dict[str, Any] = {
        "issuer": config.issuer,
        "grant_types_supported": ["authorization_code", "client_credentials"],
        "capabilities": [
            "launch-standalone",
            "client-public",
            "client-confidential-symmetric",
            "permission-v2",
        ],
        "code_challenge_methods_supported": ["S256"],
        "response_types_supported": ["code"],
    }
    if config.authorization_endpoint:
        doc["authorization_endpoint"] = config.authorization_endpoint
    if config.token_endpoint:
        doc["token_endpoint"] = config.token_endpoint
    if config.jwks_uri:
        doc["jwks_uri"] = config.jwks_uri
    if config.introspection_url:
        doc["introspection_endpoint"] = config.introspection_url
    return doc


def external_security(config: ExternalAuthConfig) -> dict[str, Any]:
    uris = [
        {"url": name, "valueUri": url}
        for name, url in (("authorize", config.authorization_endpoint), ("token", config.token_endpoint))
        if url
    ]
    block: dict[str, Any] = {"cors": True, "service": [_SECURITY_SERVICE]}
    if uris:
        block["extension"] = [{"url": OAUTH_URIS, "extension": uris}]
    return block
