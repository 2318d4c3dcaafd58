"""A keep-alive HTTP/1.1 client for the benchmarks: the standard library's `http.client` on one
connection, with the little of httpx's interface `bench.query` uses (`get`, `status_code`,
`content`, `text`, `json()`).

httpx spent 0.25 to 0.45 ms of its own on each request here (against 0.2 ms for a whole request to
an unknown path with `http.client`), the same for either server: it measured itself more than
the difference between them. Like `bench.find_client`, this measures the servers.
"""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit


@dataclass(frozen=True)
class Reply:
    status_code: int
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)


class KeepAlive:
    """GET requests on one connection to `base_url` (http://host:port/root), each with `headers`."""

    def __init__(self, base_url: str, *, headers: dict[str, str] | None = None, timeout: float = 60) -> None:
        parts = urlsplit(base_url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._root, self._headers, self._timeout = parts.path.rstrip("/"), headers or {}, timeout
        self._conn: http.client.HTTPConnection | None = None

    def get(
        self, path: str, *, params: dict[str, str] | None = None, headers: dict[str, str] | None = None
    ) -> Reply:
        target = self._root + path + (f"?{urlencode(params)}" if params else "")
        for attempt in (1, 2):  # once more on a fresh connection when the server closed this one
            conn = self._conn or http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
            self._conn = conn
            try:
                conn.request("GET", target, headers={**self._headers, **(headers or {})})
                response = conn.getresponse()
                body = response.read()
            except (http.client.HTTPException, ConnectionError):
                conn.close()
                self._conn = None
                if attempt == 2:
                    raise
                continue
            if response.will_close:
                conn.close()
                self._conn = None
            return Reply(response.status, body)
        raise AssertionError("not reached")
