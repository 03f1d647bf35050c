"""Invalid request fields: 422 with one line naming the field, and the field as `param`."""

from __future__ import annotations

import httpx
import pytest


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("limit=0", "query.limit: Input should be greater than or equal to 1"),
        ("limit=many", "query.limit: Input should be a valid integer"),
    ],
)
async def test_bad_query_value_is_422_naming_it(
    client: httpx.AsyncClient, query: str, message: str
) -> None:
    response = await client.get(f"/dlq?{query}")

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["message"].startswith(message)
    assert (error["type"], error["code"], error["param"]) == (
        "invalid_request_error", "invalid_value", "limit",
    )  # fmt: skip
