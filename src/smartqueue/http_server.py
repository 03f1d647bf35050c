"""The HTTP server's own limit on a request's header block: 431 above it, never unbounded.

uvicorn answers any h11 protocol error with a bare 400; this protocol tells a header block
over `h11_max_incomplete_event_size` apart and answers 431 in the service's error shape.
"""

from __future__ import annotations

import json

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

DEFAULT_HEADER_BLOCK_BYTES = 16 * 1024  # h11's own default
TOO_LARGE_BODY = json.dumps({"error": {
    "message": "the request's header block is over the server's limit",
    "type": "invalid_request_error", "code": "headers_too_large",
}}).encode()  # fmt: skip


class HeaderLimitedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, answering 431 when the header block outgrows its limit."""

    def send_400_response(self, msg: str) -> None:
        """431 when the unparsed header block is over the limit, else uvicorn's 400."""
        pending, _ = self.conn.trailing_data
        limit = self.config.h11_max_incomplete_event_size or DEFAULT_HEADER_BLOCK_BYTES
        if len(pending) <= limit:
            super().send_400_response(msg)
            return
        headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
        response = h11.Response(status_code=431, headers=headers,
                                reason=b"Request Header Fields Too Large")  # fmt: skip
        for event in (response, h11.Data(data=TOO_LARGE_BODY), h11.EndOfMessage()):
            self.transport.write(self.conn.send(event) or b"")
        self.transport.close()
