"""Server-rendered pages of the authorization server: login, consent (with the patient picker),
errors, logout and the grant manager. Plain HTML forms, no JavaScript; every value is escaped.

Every page is sent with anti-framing and no-store headers (RFC 9700 4.16); forms that change
state carry the CSRF token of the browser's session.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from fastapi import Response

from smart_auth.scopes import V1_PERMS, VERBS

HEADERS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

# The palette, written once: the server's own pages and the SMART style document
# (/auth/smart-style.json, App Launch 2.2 "smart_style_url") that launched apps may follow.
BACKGROUND, TEXT, HIGHLIGHT, ERROR, SUCCESS = "#f3f5f7", "#1d2630", "#1f5fa8", "#b3261e", "#1e7b34"
FONT, RADIUS = "system-ui, sans-serif", "6px"

SMART_STYLE = {
    "color_background": BACKGROUND,
    "color_error": ERROR,
    "color_highlight": HIGHLIGHT,
    "color_modal_backdrop": "",
    "color_success": SUCCESS,
    "color_text": TEXT,
    "dim_border_radius": RADIUS,
    "dim_font_size": "16px",
    "dim_spacing_size": "16px",
    "font_family_body": FONT,
    "font_family_heading": FONT,
}

_STYLE = f"""
body{{font:16px/1.45 {FONT};margin:0;background:{BACKGROUND};color:{TEXT}}}
main{{max-width:34rem;margin:3rem auto;background:#fff;padding:2rem 2.2rem;border-radius:10px;
box-shadow:0 1px 4px rgba(0,0,0,.12)}}
h1{{font-size:1.35rem;margin:0 0 1rem}}label{{display:block;margin:.7rem 0 .2rem;font-weight:600}}
input[type=text],input[type=password],input[type=search]{{width:100%;box-sizing:border-box;padding:.5rem;
border:1px solid #b9c2cc;border-radius:{RADIUS};font-size:1rem}}
button{{font-size:1rem;padding:.55rem 1.2rem;border-radius:{RADIUS};border:1px solid {HIGHLIGHT};
background:{HIGHLIGHT};color:#fff;margin:1rem .5rem 0 0;cursor:pointer}}
button.secondary{{background:#fff;color:{HIGHLIGHT}}}
ul.scopes{{list-style:none;padding:0}}
label.plain{{font-weight:400;display:inline}}ul.scopes li{{margin:.35rem 0}}
code{{font-size:.85rem;color:#43505e}}
.error{{background:#fdecea;border:1px solid #f5c2bd;padding:.6rem .8rem;border-radius:{RADIUS}}}
.who{{color:#43505e;font-size:.9rem}}table{{border-collapse:collapse;width:100%}}
td{{padding:.3rem .2rem;border-bottom:1px solid #e4e8ec;vertical-align:top}}
"""


def page(
    title: str, body: str, *, status: int = 200, extra_headers: dict[str, str] | None = None
) -> Response:
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main><h1>{escape(title)}</h1>{body}</main></body></html>"
    )
    return Response(
        html,
        status_code=status,
        media_type="text/html; charset=utf-8",
        headers=HEADERS | (extra_headers or {}),
    )


def error_page(message: str, *, status: int = 400) -> Response:
    """An authorization request we cannot redirect back (unknown client, bad redirect URI)."""
    return page(
        "Authorization request refused",
        f'<p class="error">{escape(message)}</p><p>The application that sent you here is not set up '
        "correctly. Nothing was shared with it.</p>",
        status=status,
    )


def login_page(*, request_id: str, csrf: str, client_name: str, error: str | None = None) -> Response:
    problem = f'<p class="error">{escape(error)}</p>' if error else ""
    return page(
        "Sign in",
        f'<p class="who">{escape(client_name)} asks for access to imaging data.</p>{problem}'
        '<form method="post" action="login">'
        f'<input type="hidden" name="request" value="{escape(request_id)}">'
        f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
        '<label for="username">Username</label>'
        '<input type="text" id="username" name="username" autocomplete="username" required autofocus>'
        '<label for="password">Password</label>'
        '<input type="password" id="password" name="password" autocomplete="current-password" required>'
        '<button type="submit">Sign in</button></form>',
        status=401 if error else 200,
    )


@dataclass(frozen=True)
class PatientChoice:
    id: str
    label: str


_WHOSE = {"patient": "of the selected patient", "user": "you may see", "system": "on this server"}


def describe_scope(scope: str) -> str:
    """A line a person can judge, with the exact scope beside it."""
    fixed = {
        "launch": "Use the context your EHR opened this app in",
        "launch/patient": "Know which patient is selected",
        "launch/encounter": "Know which encounter is selected",
        "openid": "Know who you are",
        "fhirUser": "Know who you are (your FHIR record)",
        "profile": "Know your profile",
        "offline_access": "Keep access when you are not using it (until you revoke it)",
        "online_access": "Keep access while you are signed in",
    }
    if scope in fixed:
        return fixed[scope]
    head, _, rest = scope.partition("/")
    rtype, _, perms = rest.partition(".")
    perms, _, query = perms.partition("?")
    letters = V1_PERMS.get(perms, perms)
    verbs = ", ".join(VERBS[c] for c in letters if c in VERBS) or perms
    what = "all data" if rtype == "*" else rtype
    whose = {"patient": "of the selected patient", "user": "you may see", "system": "on this server"}.get(
        head, ""
    )
    limit = f" where {query}" if query else ""
    return f"{verbs.capitalize()} {what} {whose}{limit}"


def consent_page(
    *,
    request_id: str,
    csrf: str,
    client_name: str,
    username: str,
    scopes: Sequence[str],
    patient_label: str | None,
    pick_patient: bool,
    choices: Sequence[PatientChoice],
    query: str,
    error: str | None = None,
) -> Response:
    """The scopes asked for, each of which the user may untick; the patient of the launch, or a
    picker (a search form of its own above the consent form) when the user must choose one."""
    problem = f'<p class="error">{escape(error)}</p>' if error else ""
    items = "".join(
        f'<li><label class="plain"><input type="checkbox" name="scope" value="{escape(s)}" checked> '
        f"{escape(describe_scope(s))} <code>{escape(s)}</code></label></li>"
        for s in scopes
    )
    search, radios = "", ""
    if patient_label is not None:
        search = f"<p>Patient: <strong>{escape(patient_label)}</strong></p>"
    elif pick_patient:
        search = (
            '<form method="get" action="consent">'
            f'<input type="hidden" name="request" value="{escape(request_id)}">'
            '<label for="q">Find the patient</label>'
            f'<input type="search" id="q" name="q" value="{escape(query)}" placeholder="Family name">'
            '<button class="secondary" type="submit">Search</button></form>'
        )
        options = "".join(
            f'<li><label class="plain"><input type="radio" name="patient" value="{escape(c.id)}"'
            f"{' checked' if len(choices) == 1 else ''} required> {escape(c.label)}</label></li>"
            for c in choices
        )
        radios = "<p><strong>Choose the patient</strong></p>" + (
            f'<ul class="scopes">{options}</ul>' if choices else "<p>No patient matches.</p>"
        )
    return page(
        "Allow access?",
        f'<p class="who">Signed in as {escape(username)}.</p>{problem}'
        f"<p><strong>{escape(client_name)}</strong> asks to:</p>{search}"
        '<form method="post" action="consent">'
        f'<input type="hidden" name="request" value="{escape(request_id)}">'
        f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
        f'{radios}<ul class="scopes">{items}</ul>'
        '<button type="submit" name="decision" value="allow">Allow</button>'
        '<button class="secondary" type="submit" name="decision" value="deny" formnovalidate>Deny</button>'
        "</form>",
    )


def logout_page(*, csrf: str | None, done: bool = False) -> Response:
    if done or csrf is None:
        return page("Signed out", "<p>You are signed out of this imaging server.</p>")
    return page(
        "Sign out",
        '<form method="post" action="logout">'
        f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
        '<button type="submit">Sign out</button></form>',
    )


@dataclass(frozen=True)
class GrantLine:
    id: str
    client_name: str
    scope: str
    created: str


def manage_page(*, csrf: str, username: str, grants: Sequence[GrantLine]) -> Response:
    rows = "".join(
        f"<tr><td><strong>{escape(g.client_name)}</strong><br><code>{escape(g.scope)}</code>"
        f'<br><span class="who">since {escape(g.created)}</span></td><td>'
        '<form method="post" action="manage">'
        f'<input type="hidden" name="csrf" value="{escape(csrf)}">'
        f'<input type="hidden" name="grant" value="{escape(g.id)}">'
        '<button class="secondary" type="submit">Revoke</button></form></td></tr>'
        for g in grants
    )
    body = f"<table>{rows}</table>" if grants else "<p>No application has access.</p>"
    return page("Applications with access", f'<p class="who">Signed in as {escape(username)}.</p>{body}')
