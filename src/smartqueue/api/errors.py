"""Every error answer, mapped in one place to `{"error": {"message", "type", "code"}}`."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from smartqueue.config import describe_errors
from smartqueue.errors import SmartQueueError

log = logging.getLogger(__name__)

_HTTP_TYPES = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
}


def error_response(
    status_code: int,
    message: str,
    *,
    error_type: str,
    code: str,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """An error answer in the one shape clients (and OpenAI SDKs) understand."""
    detail: dict[str, Any] = {"message": message, "type": error_type, "code": code}
    if param is not None:
        detail["param"] = param
    return JSONResponse({"error": detail}, status_code=status_code, headers=headers)


async def _smartqueue_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, SmartQueueError)
    return error_response(
        error.status_code,
        error.message,
        error_type=error.error_type,
        code=error.code,
        param=error.param,
        headers=error.headers(),
    )


async def _validation_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    message, param = describe_errors(error.errors())
    return error_response(
        422, message, error_type="invalid_request_error", code="invalid_value", param=param
    )


async def _http_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    return error_response(
        error.status_code,
        str(error.detail),
        error_type=_HTTP_TYPES.get(error.status_code, "invalid_request_error"),
        code=str(error.status_code),
        headers=dict(error.headers or {}),
    )


async def _unexpected_error(_: Request, error: Exception) -> JSONResponse:
    log.exception("unexpected error", exc_info=error)
    return error_response(500, "internal error", error_type="server_error", code="internal_error")


def install_error_handlers(app: FastAPI) -> None:
    """Map every error to the one JSON shape."""
    app.add_exception_handler(SmartQueueError, _smartqueue_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
