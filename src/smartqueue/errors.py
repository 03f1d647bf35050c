"""The errors smartqueue raises across the HTTP boundary, mapped to answers in api/errors.py.

SmartQueueError                 500 server_error
├── BadRequest                  400 invalid_request_error
│   ├── InvalidInput            422 (a header or body names something unknown)
│   ├── PayloadTooLarge         413
│   └── HeadersTooLarge         431 (a kept header, or all of them, over the limit)
├── Unauthorized                401 (admin token missing or wrong)
├── AdminDisabled               403 (no admin token configured)
├── NotFound                    404
├── Conflict                    409
└── Unavailable                 503 + Retry-After
    ├── QueueFull               backpressure refused the job
    ├── StoreUnavailable        Redis does not answer
    ├── OutcomeUnknown          Redis failed mid-submission: the job may exist (Location)
    └── WaitTimedOut            a held request outlived its wait
"""

from __future__ import annotations


class SmartQueueError(Exception):
    """Base of every error that becomes an HTTP answer."""

    status_code = 500
    error_type = "server_error"
    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def headers(self) -> dict[str, str]:
        """Extra response headers for this error."""
        return {}


class BadRequest(SmartQueueError):
    """The request is malformed."""

    status_code = 400
    error_type = "invalid_request_error"
    code = "bad_request"


class InvalidInput(BadRequest):
    """A header or body value is not one smartqueue knows."""

    status_code = 422
    code = "invalid_value"


class PayloadTooLarge(BadRequest):
    """The request body is over the configured limit."""

    status_code = 413
    code = "payload_too_large"


class HeadersTooLarge(BadRequest):
    """A header kept with the job, or all of them together, is over the configured limit."""

    status_code = 431
    code = "headers_too_large"


class Unauthorized(SmartQueueError):
    """An admin operation without the right bearer token."""

    status_code = 401
    error_type = "authentication_error"
    code = "unauthorized"

    def headers(self) -> dict[str, str]:
        """Tell the client which scheme to use."""
        return {"WWW-Authenticate": "Bearer"}


class AdminDisabled(SmartQueueError):
    """Admin operations are refused because no admin token is configured."""

    status_code = 403
    error_type = "permission_error"
    code = "admin_disabled"


class NotFound(SmartQueueError):
    """The job, entry or path does not exist."""

    status_code = 404
    error_type = "not_found_error"
    code = "not_found"


class Conflict(SmartQueueError):
    """The operation does not fit the current state."""

    status_code = 409
    error_type = "conflict_error"
    code = "conflict"


class Unavailable(SmartQueueError):
    """Try again later: always carries an integer Retry-After >= 1."""

    status_code = 503
    error_type = "unavailable_error"
    code = "unavailable"

    def __init__(self, message: str, *, retry_after_s: int, code: str | None = None):
        super().__init__(message, code=code)
        self.retry_after_s = max(1, int(retry_after_s))

    def headers(self) -> dict[str, str]:
        """Retry-After in whole seconds."""
        return {"Retry-After": str(self.retry_after_s)}


class QueueFull(Unavailable):
    """Backpressure refused the job."""

    code = "queue_full"


class StoreUnavailable(Unavailable):
    """Redis did not answer in time (the message never carries Redis's own error text)."""

    code = "store_unavailable"

    def __init__(self, message: str = "the job store (Redis) is unavailable"):
        super().__init__(message, retry_after_s=1)


class WaitTimedOut(Unavailable):
    """A held request outlived its wait; the job goes on and can be polled."""

    code = "wait_timed_out"

    def __init__(self, message: str, *, retry_after_s: int, job_id: str):
        super().__init__(message, retry_after_s=retry_after_s)
        self.job_id = job_id

    def headers(self) -> dict[str, str]:
        """Retry-After plus where to find the job."""
        return {**super().headers(), "Location": f"/status/{self.job_id}"}


class OutcomeUnknown(Unavailable):
    """A submission whose Redis step failed after it may have been applied.

    The answer names the job id it would have (`Location: /status/{id}`): a retry with the same
    Idempotency-Key, or a look at that Location, tells whether it exists — never a second job.
    """

    code = "outcome_unknown"

    def __init__(self, message: str, *, job_id: str, retry_after_s: int = 1):
        super().__init__(message, retry_after_s=retry_after_s)
        self.job_id = job_id

    def headers(self) -> dict[str, str]:
        """Retry-After plus where the job would be."""
        return {**super().headers(), "Location": f"/status/{self.job_id}"}
