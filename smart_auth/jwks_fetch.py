"""Fetching a JSON Web Key Set from a registered URL, with caching (SMART CA "Signature
Verification": cache no longer than Cache-Control allows; RFC 8725 3.10: only registered URLs,
never one a token names).

A set is kept for its `max-age` (at most an hour, five minutes when none is given). A key id
not found in the cached set forces a refetch, and such forced refetches happen at most once a
minute per URL: a client's key rotation works at once, a flood of unknown kids does not become
a flood of requests.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx

MAX_BYTES = 256 * 1024
DEFAULT_AGE, MAX_AGE, REFETCH_GAP = 300.0, 3600.0, 60.0
_MAX_AGE = re.compile(r"max-age=(\d+)")


class JwksUnavailable(Exception):
    """The set could not be fetched or is not a JWKS."""


@dataclass
class _Entry:
    jwks: dict[str, Any]
    fresh_until: float
    forced_at: float  # last refetch forced by an unknown kid


class JwksFetcher:
    def __init__(self, *, timeout: float = 5.0) -> None:
        self._timeout = timeout
        self._cache: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def get(self, url: str, *, want_kid: str | None = None) -> dict[str, Any]:
        """The set at `url`; refetched when stale, or when `want_kid` is not in it (rate-limited)."""
        now = time.monotonic()
        with self._lock:
            entry = self._cache.get(url)
        if (
            entry is not None
            and now < entry.fresh_until
            and (want_kid is None or _has_kid(entry.jwks, want_kid) or now - entry.forced_at < REFETCH_GAP)
        ):
            return entry.jwks
        try:
            jwks, age = self._fetch(url)
        except JwksUnavailable:
            if entry is not None and now < entry.fresh_until:
                return entry.jwks
            raise
        forced = entry is not None and now < entry.fresh_until
        with self._lock:
            self._cache[url] = _Entry(jwks, now + age, now if forced else -REFETCH_GAP)
        return jwks

    def _fetch(self, url: str) -> tuple[dict[str, Any], float]:
        try:
            with httpx.stream(
                "GET",
                url,
                headers={"Accept": "application/json"},
                timeout=self._timeout,
                follow_redirects=False,
            ) as response:
                if response.status_code != 200:
                    raise JwksUnavailable(f"JWKS URL answered {response.status_code}")
                body = b""
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_BYTES:
                        raise JwksUnavailable("JWKS too large")
                control = response.headers.get("cache-control", "")
        except httpx.HTTPError as exc:
            raise JwksUnavailable("JWKS URL unreachable") from exc
        try:
            jwks = json.loads(body)
        except ValueError as exc:
            raise JwksUnavailable("JWKS is not JSON") from exc
        if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
            raise JwksUnavailable("not a JWKS")
        if "no-store" in control or "no-cache" in control:
            return jwks, 0.0
        found = _MAX_AGE.search(control)
        return jwks, min(float(found.group(1)), MAX_AGE) if found else DEFAULT_AGE


def _has_kid(jwks: dict[str, Any], kid: str) -> bool:
    return any(isinstance(k, dict) and k.get("kid") == kid for k in jwks.get("keys", []))
