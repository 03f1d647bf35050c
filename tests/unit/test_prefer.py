"""RFC 7240 `Prefer` as a table: the header in, what the client asked for out."""

from __future__ import annotations

import pytest

from smartqueue.api.holding import Preference, parse_prefer


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param(None, Preference(), id="absent"),
        pytest.param("", Preference(), id="empty"),
        pytest.param("respond-async", Preference(respond_async=True), id="respond-async"),
        pytest.param("Respond-Async", Preference(respond_async=True), id="mixed-case"),
        pytest.param("wait=10", Preference(wait_s=10.0), id="wait"),
        pytest.param("WAIT = 7", Preference(wait_s=7.0), id="wait-mixed-case-and-spaces"),
        pytest.param("respond-async, wait=5", Preference(True, 5.0), id="both-comma"),
        pytest.param("wait=3; respond-async", Preference(True, 3.0), id="both-semicolon"),
        pytest.param("handling=lenient", Preference(), id="unknown-preference"),
        pytest.param("respond-asynchronously", Preference(), id="longer-token"),
        pytest.param("nowait=5", Preference(), id="wait-inside-a-word"),
        pytest.param("wait=soon", Preference(), id="wait-not-a-number"),
        pytest.param("wait=-5", Preference(), id="wait-negative"),
        pytest.param(",;  ,", Preference(), id="separators-only"),
    ],
)
def test_parse_prefer_reads_respond_async_and_wait(
    header: str | None, expected: Preference
) -> None:
    assert parse_prefer(header) == expected
