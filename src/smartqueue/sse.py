"""Pure server-sent events: the one encoder and parser of the service (bytes in, bytes out).

An event is lines of `field: value` ended by a blank line; `data:` lines carry the payload and
OpenAI streams end with `data: [DONE]`. Parsed events are kept raw (without their blank-line
end) so a GPU's own events can be stored and relayed exactly as it sent them.
"""

from __future__ import annotations

DONE = b"[DONE]"


def encode_event(data: bytes, *, event_id: str | None = None, event: str | None = None) -> bytes:
    """One event carrying `data` (one `data:` line per line), with optional id and name."""
    head = f"id: {event_id}\n" if event_id else ""
    head += f"event: {event}\n" if event else ""
    lines = b"".join(b"data: " + line + b"\n" for line in data.split(b"\n"))
    return head.encode() + lines + b"\n"


def encode_raw_event(event: bytes) -> bytes:
    """An event as `split_events` returned it, ended again for the wire."""
    return event + b"\n\n"


def split_events(buffer: bytes) -> tuple[list[bytes], bytes]:
    """Complete events in `buffer` (without their blank-line ends) and the incomplete rest."""
    normalized = buffer.replace(b"\r\n", b"\n")
    *events, rest = normalized.split(b"\n\n")
    return [event for event in events if event.strip()], rest


def event_data(event: bytes) -> bytes:
    """The `data:` payload of one event (its data lines joined with newlines)."""
    lines = [line[5:].lstrip(b" ") for line in event.split(b"\n") if line.startswith(b"data:")]
    return b"\n".join(lines)


def is_done(event: bytes) -> bool:
    """True for the `data: [DONE]` event that ends an OpenAI stream."""
    return event_data(event).strip() == DONE
