"""Job ids and the lifecycle."""

from __future__ import annotations

import math

import pytest

from smartqueue.api.submission import kept_headers, parse_priority
from smartqueue.errors import InvalidInput
from smartqueue.models import TERMINAL_STATUSES, TRANSITIONS, JobStatus, Priority, new_job_id


def test_job_ids_100000_have_no_collision_and_at_least_122_bits() -> None:
    ids = {new_job_id() for _ in range(100_000)}

    assert len(ids) == 100_000
    sample = next(iter(ids))
    assert len(sample) * math.log2(64) >= 122
    assert all(c.isalnum() or c in "-_" for c in sample)


def test_terminal_statuses_allow_no_transition() -> None:
    assert all(not TRANSITIONS[status] for status in TERMINAL_STATUSES)
    assert {s for s in JobStatus if s.is_terminal} == TERMINAL_STATUSES


@pytest.mark.parametrize(
    ("source", "target"),
    [(JobStatus.PROCESSING, JobStatus.QUEUED), (JobStatus.COMPLETED, JobStatus.PROCESSING),
     (JobStatus.QUEUED, JobStatus.COMPLETED), (JobStatus.QUEUED, JobStatus.RETRYING)],
)  # fmt: skip
def test_lifecycle_forbids_moves_that_skip_or_go_back(source: JobStatus, target: JobStatus) -> None:
    assert target not in TRANSITIONS[source]


def test_lifecycle_allows_the_retry_loop() -> None:
    assert JobStatus.RETRYING in TRANSITIONS[JobStatus.PROCESSING]
    assert JobStatus.QUEUED in TRANSITIONS[JobStatus.RETRYING]


def test_kept_headers_drop_secrets_and_keep_the_allowlist() -> None:
    headers = {
        "Authorization": "Bearer x", "Cookie": "a=b", "Proxy-Authorization": "p",
        "X-Api-Key": "k", "Content-Type": "application/json", "Accept": "*/*",
        "X-Syslog-Model": "light", "X-Request-Id": "r1", "User-Agent": "ua",
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    }  # fmt: skip

    assert kept_headers(headers) == {
        "content-type": "application/json",
        "accept": "*/*",
        "x-syslog-model": "light",
        "x-request-id": "r1",
        "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    }


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, Priority.NORMAL), ("HIGH", Priority.HIGH), (" low ", Priority.LOW)],
)
def test_parse_priority_is_case_insensitive(value: str | None, expected: Priority) -> None:
    assert parse_priority(value) is expected


def test_parse_priority_unknown_names_allowed_values() -> None:
    with pytest.raises(InvalidInput, match="high, normal, low"):
        parse_priority("asap")
