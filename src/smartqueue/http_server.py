"""The HTTP server's own limit on a request's header block: 431 above it, never unbounded.

The service runs uvicorn's httptools protocol (the faster parser, uvicorn's default when
httptools is installed), which has no header block limit of its own: httptools buffers a header
until it ends. This protocol counts the bytes received while a header block is incomplete and
answers 431 in the service's error shape once they pass the limit (uvicorn's only setting for
it, `h11_max_incomplete_event_size`), so a client cannot make the server buffer more than the
limit plus one read.
"""

from __future__ import annotations

import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

DEFAULT_HEADER_BLOCK_BYTES = 16 * 1024  # h11's default, the limit this service always had
TOO_LARGE_BODY = json.dumps({"error": {
    "message": "the request's header block is over the server's limit",
    "type": "invalid_request_error", "code": "headers_too_large",
}}).encode()  # fmt: skip
TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(TOO_LARGE_BODY), TOO_LARGE_BODY)
)


class HeaderBlockTooLarge(Exception):
    """Raised from a parser callback: httptools stops and uvicorn calls send_400_response."""


class HeaderLimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, answering 431 when a header block outgrows its limit.

    Two counts: the bytes received while a header block is open (httptools buffers a header
    until it ends: this bounds the buffer), and the parsed URL and headers (a whole request
    may arrive in one read).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_limit_bytes = (
            self.config.h11_max_incomplete_event_size or DEFAULT_HEADER_BLOCK_BYTES
        )
        self.reading_headers = True
        self.received_bytes = 0  # received since the current header block began (at most)
        self.parsed_bytes = 0  # URL and headers of the current request

    def data_received(self, data: bytes) -> None:
        """Parse `data`; 431 and close when a header block is still open past the limit."""
        if self.transport.is_closing():
            return
        if self.reading_headers:
            self.received_bytes += len(data)
        super().data_received(data)
        if self.reading_headers and self.received_bytes > self.header_limit_bytes:
            self.refuse()

    def refuse(self) -> None:
        """Answer 431 and close the connection."""
        if not self.transport.is_closing():
            self.transport.write(TOO_LARGE)
            self.transport.close()

    def send_400_response(self, msg: str) -> None:
        """431 when the parser stopped on a header block over the limit, else uvicorn's 400."""
        if self.parsed_bytes > self.header_limit_bytes:
            self.refuse()
        else:
            super().send_400_response(msg)

    def on_message_begin(self) -> None:
        """A request begins: nothing of its header block parsed yet."""
        self.parsed_bytes = 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        """Count the URL into the header block."""
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        """Count one header line into the header block."""
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _count(self, size: int) -> None:
        self.parsed_bytes += size
        if self.parsed_bytes > self.header_limit_bytes:
            raise HeaderBlockTooLarge

    def on_headers_complete(self) -> None:
        """The header block ended within the limit."""
        self.reading_headers = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        """The next bytes begin another request's header block."""
        self.reading_headers, self.received_bytes = True, 0
        super().on_message_complete()
