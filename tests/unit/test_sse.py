"""Server-sent events as tables: what goes on the wire, and what is read back from it."""

from __future__ import annotations

import pytest

from smartqueue.sse import encode_event, encode_raw_event, event_data, is_done, split_events


@pytest.mark.parametrize(
    ("data", "event_id", "event", "expected"),
    [
        pytest.param(b'{"a":1}', None, None, b'data: {"a":1}\n\n', id="data-only"),
        pytest.param(b"x", "5-0", None, b"id: 5-0\ndata: x\n\n", id="with-id"),
        pytest.param(b"x", None, "status", b"event: status\ndata: x\n\n", id="with-name"),
        pytest.param(b"x", "5-0", "chunk", b"id: 5-0\nevent: chunk\ndata: x\n\n", id="both"),
        pytest.param(b"a\nb", None, None, b"data: a\ndata: b\n\n", id="one-data-line-per-line"),
        pytest.param(b"", None, None, b"data: \n\n", id="empty"),
    ],
)
def test_encode_event_writes_id_name_and_data_lines(
    data: bytes, event_id: str | None, event: str | None, expected: bytes
) -> None:
    assert encode_event(data, event_id=event_id, event=event) == expected


def test_encode_raw_event_ends_a_split_event_again() -> None:
    events, _ = split_events(b"data: 1\n\n")

    assert encode_raw_event(events[0]) == b"data: 1\n\n"


@pytest.mark.parametrize(
    ("buffer", "events", "rest"),
    [
        pytest.param(b"", [], b"", id="empty"),
        pytest.param(b"data: 1", [], b"data: 1", id="incomplete-kept"),
        pytest.param(b"data: 1\n\ndata: 2\n\n", [b"data: 1", b"data: 2"], b"", id="two"),
        pytest.param(b"data: 1\n\ndata: 2\n", [b"data: 1"], b"data: 2\n", id="half-ended"),
        pytest.param(b"data: 1\r\n\r\nda", [b"data: 1"], b"da", id="crlf"),
        pytest.param(
            b"id: 3\nevent: x\ndata: 1\n\n",
            [b"id: 3\nevent: x\ndata: 1"],
            b"",
            id="fields-kept-raw",
        ),
        pytest.param(b"\n\n\n\ndata: 1\n\n", [b"data: 1"], b"", id="blank-events-dropped"),
    ],
)
def test_split_events_returns_complete_events_and_the_rest(
    buffer: bytes, events: list[bytes], rest: bytes
) -> None:
    assert split_events(buffer) == (events, rest)


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        pytest.param(b"data: x", b"x", id="one-line"),
        pytest.param(b"data:x", b"x", id="no-space"),
        pytest.param(b"data: a\ndata: b", b"a\nb", id="lines-joined"),
        pytest.param(b"id: 1\nevent: chunk\ndata: x", b"x", id="other-fields-ignored"),
        pytest.param(b": comment", b"", id="no-data"),
        pytest.param(encode_event(b"a\nb", event_id="1", event="e"), b"a\nb", id="round-trip"),
    ],
)
def test_event_data_is_the_data_lines_joined(event: bytes, expected: bytes) -> None:
    assert event_data(event) == expected


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (b"data: [DONE]", True),
        (b"data:[DONE]", True),
        (b"data: [DONE] ", True),
        (b"data: [DONE]x", False),
        (b'data: {"done": true}', False),
        (b"event: [DONE]", False),
    ],
)
def test_is_done_only_for_the_done_marker(event: bytes, expected: bool) -> None:
    assert is_done(event) is expected
