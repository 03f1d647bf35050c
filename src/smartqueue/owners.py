"""Who a job belongs to: an HMAC of the caller's credential, never the credential itself.

The credential is the whole `Authorization` header value. Callers without one share the
anonymous owner. An admin (the admin bearer token) may see and cancel every job.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

ANONYMOUS = "anonymous"


def owner_of(credential: str | None, *, secret: bytes) -> str:
    """The owner a credential stands for: HMAC-SHA256 under the server's secret, hex."""
    if not credential:
        return ANONYMOUS
    return hmac.new(secret, credential.encode(), hashlib.sha256).hexdigest()


def scoped_key_digest(owner: str, key: str) -> str:
    """An Idempotency-Key as stored: hashed with its owner, so keys never cross owners."""
    return hashlib.sha256(f"{owner}\n{key}".encode()).hexdigest()


def request_digest(*, route: str, path: str, body: bytes) -> str:
    """What a reused Idempotency-Key must bring again: the same route, path and body."""
    digest = hashlib.sha256(f"{route}\n{path}\n".encode())
    digest.update(body)
    return digest.hexdigest()


@dataclass(frozen=True)
class Caller:
    """Who is asking: their owner value, and whether they hold the admin token."""

    owner: str
    admin: bool = False

    def may_see(self, job_owner: str) -> bool:
        """True for the job's owner and for an admin."""
        return self.admin or hmac.compare_digest(job_owner, self.owner)
