"""Random secrets and their digests: session ids, CSRF tokens, bearer tokens, setup tokens.

Secrets are stored only as sha256 digests (they are 256-bit random values,
so a fast hash is enough; passwords and PINs use argon2id instead, auth.py).

    tok = new_bearer()            -> "apm_<43 chars>"   shown once by `apm token create`
    digest(tok)                   -> hex sha256, what auth.json keeps
    new_setup_token()             -> "K7Q2M-9XD4R-T3VHE-P8WNA" (100 bits, easy to type)
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Any, Dict, List, Optional

from alter.errors import NotFound, UsageError

BEARER_PREFIX = "apm_"
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
MAX_TOKENS = 100


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass"))


def new_session_id() -> str:
    return secrets.token_urlsafe(32)


def new_csrf() -> str:
    return secrets.token_urlsafe(24)


def new_bearer() -> str:
    return BEARER_PREFIX + secrets.token_urlsafe(32)


def new_token_id() -> str:
    return "tk_" + secrets.token_hex(4)


def new_setup_token() -> str:
    raw = "".join(secrets.choice(_CROCKFORD) for _ in range(20))
    return "-".join(raw[i : i + 5] for i in range(0, 20, 5))


def normalize_setup_token(text: str) -> str:
    """What the user typed -> canonical form (case, dashes, spaces, O/0 and I/L/1 forgiven)."""
    clean = "".join(c for c in text.upper() if c.isalnum())
    clean = clean.replace("O", "0").replace("I", "1").replace("L", "1")
    return "-".join(clean[i : i + 5] for i in range(0, len(clean), 5))


class BearerTokens:
    """The API tokens `apm token create` makes: listed, revocable, shown once.  Not thread-safe (auth.py locks)."""

    def __init__(self, stored: Any = None) -> None:
        self.items: List[Dict[str, Any]] = []
        self._by_hash: Dict[str, Dict[str, Any]] = {}
        for entry in stored if isinstance(stored, list) else []:
            if isinstance(entry, dict) and isinstance(entry.get("hash"), str) and isinstance(entry.get("id"), str):
                item = {
                    "id": entry["id"],
                    "name": str(entry.get("name") or ""),
                    "hash": entry["hash"],
                    "created": float(entry.get("created") or 0),
                    "last_used": entry.get("last_used"),
                }
                self.items.append(item)
                self._by_hash[item["hash"]] = item

    def create(self, name: str) -> Dict[str, Any]:
        name = (name or "").strip()
        if len(name) > 64 or any(ord(c) < 32 for c in name):
            raise UsageError(
                f"token name {name[:70]!r} is too long or has control characters", hint="at most 64 characters"
            )
        if len(self.items) >= MAX_TOKENS:
            raise UsageError(f"there are already {MAX_TOKENS} tokens", hint="revoke unused ones: apm token list")
        secret = new_bearer()
        ids = {i["id"] for i in self.items}
        token_id = new_token_id()
        while token_id in ids:
            token_id = new_token_id()
        item: Dict[str, Any] = {
            "id": token_id,
            "name": name or token_id,
            "hash": digest(secret),
            "created": time.time(),
            "last_used": None,
        }
        self.items.append(item)
        self._by_hash[item["hash"]] = item
        shown = self.public(item)
        shown["token"] = secret
        return shown

    def find(self, secret: str) -> Optional[Dict[str, Any]]:
        if not secret.startswith(BEARER_PREFIX) or len(secret) > 200:
            return None
        return self._by_hash.get(digest(secret))

    def revoke(self, token_id: str) -> Dict[str, Any]:
        for item in self.items:
            if item["id"] == token_id or (
                item["name"] == token_id and sum(i["name"] == token_id for i in self.items) == 1
            ):
                self.items.remove(item)
                self._by_hash.pop(item["hash"], None)
                return self.public(item)
        raise NotFound(f"no API token {token_id!r}", hint="list them: apm token list")

    @staticmethod
    def public(item: Dict[str, Any]) -> Dict[str, Any]:
        return {"id": item["id"], "name": item["name"], "created": item["created"], "last_used": item["last_used"]}

    def listing(self) -> List[Dict[str, Any]]:
        return [self.public(i) for i in self.items]

    def stored(self) -> List[Dict[str, Any]]:
        return [dict(i) for i in self.items]
