"""Failed GPU calls as tables: how a failure is classed, the backoff, and the job's verdict."""

from __future__ import annotations

import pytest

from smartqueue.models import DeadReason
from smartqueue.policy import (
    DeadLetter,
    Failure,
    FailureVerdict,
    RetryLater,
    RetryPolicy,
    counts_against_gpu,
    counts_as_attempt,
    decide_failure,
    is_retryable,
)

RETRY = RetryPolicy(max_retries=3, base_s=1.0, cap_s=60.0)
MAX_WAIT_S = 600.0


@pytest.mark.parametrize(
    ("failure", "status", "expected"),
    [
        (Failure.CONNECT, None, True),
        (Failure.TIMEOUT, None, True),
        (Failure.PROTOCOL, None, True),
        (Failure.TOO_LARGE, None, False),
        (Failure.HTTP, None, True),
        (Failure.HTTP, 400, False),
        (Failure.HTTP, 404, False),
        (Failure.HTTP, 422, False),
        (Failure.HTTP, 408, True),
        (Failure.HTTP, 409, True),
        (Failure.HTTP, 429, True),
        (Failure.HTTP, 500, True),
        (Failure.HTTP, 503, True),
    ],
)
def test_is_retryable_refuses_client_errors_and_oversized_answers(
    failure: Failure, status: int | None, expected: bool
) -> None:
    assert is_retryable(failure, status) is expected


@pytest.mark.parametrize(
    ("failure", "status", "expected"),
    [
        (Failure.CONNECT, None, True),
        (Failure.TIMEOUT, None, True),
        (Failure.PROTOCOL, None, True),
        (Failure.TOO_LARGE, None, False),
        (Failure.INVALID_REQUEST, None, False),
        (Failure.HTTP, None, True),
        (Failure.HTTP, 500, True),
        (Failure.HTTP, 503, True),
        (Failure.HTTP, 408, True),
        (Failure.HTTP, 409, False),
        (Failure.HTTP, 429, False),
        (Failure.HTTP, 400, False),
    ],
)
def test_counts_against_gpu_only_when_the_gpu_looks_unwell(
    failure: Failure, status: int | None, expected: bool
) -> None:
    assert counts_against_gpu(failure, status) is expected


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (Failure.CONNECT, False),
        (Failure.HTTP, True),
        (Failure.TIMEOUT, True),
        (Failure.PROTOCOL, True),
        (Failure.TOO_LARGE, True),
        (Failure.INVALID_REQUEST, False),
    ],
)
def test_counts_as_attempt_unless_nothing_was_sent(failure: Failure, expected: bool) -> None:
    assert counts_as_attempt(failure) is expected


@pytest.mark.parametrize(
    ("attempt", "retry_after_s", "jitter", "expected"),
    [
        pytest.param(0, None, 0.0, 0.5, id="before-any-try-is-half-base"),
        pytest.param(1, None, 0.0, 0.5, id="first-retry-at-least-half-base"),
        pytest.param(1, None, 1.0, 1.0, id="first-retry-at-most-base"),
        pytest.param(2, None, 0.0, 1.0, id="doubles"),
        pytest.param(3, None, 0.5, 3.0, id="jitter-within-the-upper-half"),
        pytest.param(10, None, 0.0, 30.0, id="capped"),
        pytest.param(10, None, 1.0, 60.0, id="capped-at-most-cap"),
        pytest.param(1, 45.0, 0.0, 45.0, id="never-before-retry-after"),
        pytest.param(3, 0.1, 0.0, 2.0, id="short-retry-after-changes-nothing"),
    ],
)
def test_backoff_is_jittered_exponential_never_before_retry_after(
    attempt: int, retry_after_s: float | None, jitter: float, expected: float
) -> None:
    assert RETRY.backoff_s(attempt, retry_after_s=retry_after_s, jitter=jitter) == expected


@pytest.mark.parametrize(
    ("max_retries", "attempts", "expected"),
    [(3, 0, False), (3, 3, False), (3, 4, True), (0, 0, False), (0, 1, True)],
)
def test_exhausted_once_the_first_try_and_every_retry_are_used(
    max_retries: int, attempts: int, expected: bool
) -> None:
    assert RetryPolicy(max_retries=max_retries).exhausted(attempts) is expected


@pytest.mark.parametrize(
    ("failure", "status", "attempts", "waited_s", "retry_after_s", "expected"),
    [
        pytest.param(Failure.CONNECT, None, 0, 601.0, None,
                     DeadLetter(DeadReason.EXPIRED, 0), id="refused-after-max-wait-expires"),
        pytest.param(Failure.CONNECT, None, 5, 601.0, None,
                     DeadLetter(DeadReason.EXPIRED, 5), id="expiry-before-exhaustion"),
        pytest.param(Failure.CONNECT, None, 2, 600.0, None,
                     RetryLater(1.0, 2), id="refused-at-max-wait-retries-without-a-try"),
        pytest.param(Failure.CONNECT, None, 3, 10.0, None,
                     RetryLater(2.0, 3), id="refused-never-exhausts-retries"),
        pytest.param(Failure.TIMEOUT, None, 0, 601.0, None,
                     RetryLater(0.5, 1), id="sent-call-never-expires"),
        pytest.param(Failure.HTTP, 503, 0, 10_000.0, None,
                     RetryLater(0.5, 1), id="gpu-error-after-max-wait-retries"),
        pytest.param(Failure.HTTP, 400, 0, 10.0, None,
                     DeadLetter(DeadReason.NON_RETRYABLE, 1), id="client-error-is-final"),
        pytest.param(Failure.TOO_LARGE, None, 0, 10.0, None,
                     DeadLetter(DeadReason.RESULT_TOO_LARGE, 1), id="oversized-is-final"),
        pytest.param(Failure.HTTP, 500, 3, 10.0, None,
                     DeadLetter(DeadReason.RETRIES_EXHAUSTED, 4), id="last-retry-failed"),
        pytest.param(Failure.PROTOCOL, None, 2, 10.0, None,
                     RetryLater(2.0, 3), id="last-retry-left"),
        pytest.param(Failure.HTTP, 429, 0, 10.0, 20.0,
                     RetryLater(20.0, 1), id="honours-retry-after"),
        pytest.param(Failure.INVALID_REQUEST, None, 0, 10.0, None,
                     DeadLetter(DeadReason.INVALID_REQUEST, 0), id="unsendable-is-final-no-try"),
        pytest.param(Failure.INVALID_REQUEST, None, 2, 601.0, None,
                     DeadLetter(DeadReason.INVALID_REQUEST, 2), id="unsendable-never-expires"),
    ],
)  # fmt: skip
def test_decide_failure_follows_the_dispatch_rules(
    failure: Failure,
    status: int | None,
    attempts: int,
    waited_s: float,
    retry_after_s: float | None,
    expected: FailureVerdict,
) -> None:
    verdict = decide_failure(
        failure, status, attempts=attempts, waited_s=waited_s, max_wait_s=MAX_WAIT_S,
        retry=RETRY, retry_after_s=retry_after_s, jitter=0.0,
    )  # fmt: skip

    assert verdict == expected
