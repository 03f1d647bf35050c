"""API key on the engine port: with a key, every request needs `Authorization: Bearer KEY`.

Every path of the engine port is guarded, `/health` and the engine's metric endpoints included,
so a test can check that smartqueue sends the key on its probes as well as on its jobs. The
sidecar and control port stays open.
"""

from __future__ import annotations

import hmac

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from smartqueue_sim.responses import error_response

UNAUTHORIZED = 401


def is_authorized(authorization: str | None, *, api_key: str) -> bool:
    """Whether an `Authorization` header value carries `api_key` as a bearer token."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(token.strip().encode(), api_key.encode())


class RequireApiKey:
    """ASGI middleware answering 401 (OpenAI error shape) to requests without the key."""

    def __init__(self, app: ASGIApp, *, api_key: str) -> None:
        self.app = app
        self.api_key = api_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass authorized HTTP requests (and every non-HTTP event) on; refuse the others."""
        authorization = Headers(scope=scope).get("authorization")
        if scope["type"] != "http" or is_authorized(authorization, api_key=self.api_key):
            await self.app(scope, receive, send)
            return
        response = error_response(
            UNAUTHORIZED,
            "Invalid API Key",
            error_type="authentication_error",
            headers={"WWW-Authenticate": "Bearer"},
        )
        await response(scope, receive, send)
