"""schemathesis over the app's own OpenAPI schema, against a real `smartqueue serve` process.

Every operation gets generated requests (valid and not); the service must answer each without a
server error (no 500; 5xx only the documented 502 and 503, with Retry-After), with a status the
schema documents, and a body that matches it (errors in the one shape, `code` a string). The SSE
stream (it holds its connection) and the HTML dashboard are left out. A few examples per
operation keep it within a couple of minutes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from smartqueue.api.app import create_app
from smartqueue.config import Settings, load_fleet
from tests.conftest import REPO
from tests.support.redis_server import RedisServer
from tests.support.service import ServiceHandle, running_service

FLEET = load_fleet(REPO / "deploy" / "fleet.local.yaml")
SCHEMA = schemathesis.openapi.from_dict(create_app(Settings(), FLEET).openapi()).exclude(
    path_regex=r"/events$|^/dashboard$"
)


@schemathesis.check
def no_server_error(ctx: schemathesis.CheckContext, response: schemathesis.Response,
                    case: schemathesis.Case[Any]) -> bool | None:  # fmt: skip
    """No 500 (an unhandled error) and no 5xx but the documented 502 and 503 (with Retry-After)."""
    status = response.status_code
    assert status < 500 or status in (502, 503), f"server error {status}: {response.text[:200]}"
    if status == 503:
        assert int(response.headers["retry-after"][0]) >= 1, "a 503 without Retry-After"
    return None


CHECKS = [
    no_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def fuzzed_service(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[ServiceHandle]:  # fmt: skip
    """One replica (no GPU answers: jobs wait; a held request times out after 1 s)."""
    service_settings = Settings(redis_url=redis_server.url, key_prefix=f"f{uuid.uuid4().hex[:8]}",
                                hold_s=1.0, admin_token="fuzz-admin", owner_secret="fuzz",
                                probe_interval_s=0.5)  # fmt: skip
    workdir: Path = tmp_path_factory.mktemp("fuzz")
    with running_service(service_settings, FLEET, workdir=workdir) as handle:
        yield handle


@SCHEMA.parametrize()
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])  # fmt: skip
def test_openapi_every_operation_answers_as_documented(
    case: schemathesis.Case[Any], fuzzed_service: ServiceHandle
) -> None:
    response = case.call(base_url=fuzzed_service.url, timeout=15)
    case.validate_response(response, checks=CHECKS)
