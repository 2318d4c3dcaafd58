"""The server's signing keys (RS256, for id_tokens): files in the data directory, published at
/auth/jwks.

Each key is one private JWK file, `<created>-<kid>.json`, mode 0600, written atomically.
The newest signs; older ones stay published (so that id_tokens signed before a rotation
still verify) until more than `KEEP` keys exist. `facade keys rotate` adds a key; every
process of a deployment that shares the data directory picks it up on its next reload.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from joserfc import jwk

ALG = "RS256"
KEEP = 3


class KeyRing:
    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._lock = threading.Lock()
        self._keys: list[jwk.RSAKey] = []
        self._loaded_at = 0.0

    def ensure(self) -> None:
        """Create the first key when there is none (first start)."""
        with self._lock:
            self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            if not self._files():
                self._write_new()
            self._load()

    def rotate(self) -> str:
        """A new signing key; returns its kid. Keys beyond `KEEP` are removed."""
        with self._lock:
            self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            kid = self._write_new()
            for old in self._files()[:-KEEP]:
                old.unlink()
            self._load()
            return kid

    def signing_key(self) -> jwk.RSAKey:
        self._reload_if_stale()
        return self._keys[-1]

    def jwks(self) -> dict[str, Any]:
        """The public keys, newest first (RFC 7517 5)."""
        self._reload_if_stale()
        return {"keys": [k.as_dict(private=False) for k in reversed(self._keys)]}

    def reload(self) -> None:
        """Read the key files again (a rotation by another process is otherwise seen within a minute)."""
        with self._lock:
            self._load()

    def _reload_if_stale(self) -> None:
        if not self._keys or time.monotonic() - self._loaded_at > 60:
            with self._lock:
                self._load()

    def _files(self) -> list[Path]:
        return sorted(self._dir.glob("*.json"))

    def _load(self) -> None:
        keys = [jwk.RSAKey.import_key(json.loads(f.read_text())) for f in self._files()]
        if not keys:
            raise RuntimeError(f"no signing key in {self._dir}: run `facade keys rotate`")
        self._keys, self._loaded_at = keys, time.monotonic()

    def _write_new(self) -> str:
        key = jwk.RSAKey.generate_key(2048, parameters={"alg": ALG, "use": "sig"}, auto_kid=True)
        kid = str(key.kid)
        target = self._dir / f"{time.time_ns():020d}-{kid}.json"
        temp = target.with_suffix(".tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(key.as_dict(private=True), out)
            out.flush()
            os.fsync(out.fileno())
        temp.rename(target)
        dir_fd = os.open(self._dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return kid
