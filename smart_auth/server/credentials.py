"""Random credentials, their digests, and password hashing.

Tokens, codes, launch ids and session ids are 256 random bits, handed out once and
stored only as SHA-256 digests. Passwords and client secrets are hashed with scrypt
(RFC 7914; N=2^15, r=8, p=1, 16-byte salt: ~32 MiB and ~50 ms per check), stored as
`scrypt$N$r$p$salt$hash` so the parameters can be raised later without a migration.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

_N, _R, _P = 2**15, 8, 1
_MAXMEM = 64 * 1024 * 1024


def new_secret() -> str:
    """A 256-bit random value, URL-safe (43 characters)."""
    return secrets.token_urlsafe(32)


def digest(value: str) -> str:
    """The stored form of a token, code, launch or session id."""
    return hashlib.sha256(value.encode()).hexdigest()


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, maxmem=_MAXMEM, dklen=32)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(key)}"


def check_password(password: str, stored: str | None) -> bool:
    """Constant-time comparison; False for anything malformed."""
    if not stored:
        return False
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.urlsafe_b64decode(key + "==")
        actual = hashlib.scrypt(
            password.encode(),
            salt=base64.urlsafe_b64decode(salt + "=="),
            n=int(n),
            r=int(r),
            p=int(p),
            maxmem=_MAXMEM,
            dklen=len(expected),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
