"""POST /enqueue and GET /status/{job_id}: accepted jobs, bad input, idempotency."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.api.conftest import CHAT


async def submit(client: httpx.AsyncClient, body: object = CHAT, **headers: str) -> httpx.Response:
    """POST a JSON job with extra headers (underscores become dashes)."""
    sent = {"Content-Type": "application/json"}
    sent.update({name.replace("_", "-"): value for name, value in headers.items()})
    return await client.post("/enqueue", content=json.dumps(body), headers=sent)


async def test_enqueue_valid_job_answers_202_with_location_and_position(
    client: httpx.AsyncClient,
) -> None:
    first = await submit(client, X_Syslog_Model="light")
    second = await submit(client, X_Syslog_Model="light")

    assert first.status_code == 202
    body = first.json()
    assert first.headers["Location"] == f"/status/{body['job_id']}"
    assert body["status"] == "queued"
    assert (body["queue_depth"], body["position"]) == (1, 0)
    assert (second.json()["queue_depth"], second.json()["position"]) == (2, 1)


async def test_status_of_queued_job_shows_route_priority_and_position(
    client: httpx.AsyncClient,
) -> None:
    await submit(client, X_Syslog_Model="heavy")
    job_id = (await submit(client, X_Syslog_Model="heavy", X_Syslog_Priority="low")).json()[
        "job_id"
    ]

    record = (await client.get(f"/status/{job_id}")).json()

    assert record["status"] == "queued"
    assert (record["route"], record["priority"], record["attempts"]) == ("heavy", "low", 0)
    assert record["position"] == 1
    assert record["created_at"] > 0
    assert record["result"] is None


async def test_status_high_priority_job_is_ahead_of_queued_normal_ones(
    client: httpx.AsyncClient,
) -> None:
    await submit(client)
    await submit(client)
    high = (await submit(client, X_Syslog_Priority="high")).json()

    assert high["position"] == 0


async def test_status_unknown_job_is_404_in_the_error_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/status/AAAAAAAAAAAAAAAAAAAAAA")

    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"
    assert "AAAAAAAAAAAAAAAAAAAAAA" in response.json()["error"]["message"]


async def test_enqueue_invalid_priority_is_422_naming_allowed_values(
    client: httpx.AsyncClient,
) -> None:
    response = await submit(client, X_Syslog_Priority="urgent")

    assert response.status_code == 422
    message = response.json()["error"]["message"]
    assert "urgent" in message
    assert all(value in message for value in ("high", "normal", "low"))


async def test_enqueue_unknown_route_is_422_listing_routes(client: httpx.AsyncClient) -> None:
    response = await submit(client, X_Syslog_Model="gpt-9")

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "unknown_route"
    assert all(route in error["message"] for route in ("default", "heavy", "light", "gemma-4"))


async def test_enqueue_body_over_limit_by_content_length_is_413(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/enqueue", content=b"x" * (1_048_576 + 1), headers={"Content-Type": "text/plain"}
    )

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


async def test_enqueue_chunked_body_over_limit_is_413_while_reading(
    client: httpx.AsyncClient,
) -> None:
    async def chunks() -> object:
        for _ in range(20):
            yield b"y" * 65_536  # 1.25 MiB in all, no Content-Length

    response = await client.post("/enqueue", content=chunks())  # type: ignore[arg-type]

    assert response.status_code == 413


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b"", "application/json", 422, "invalid_value"),
        (b"   ", "text/plain", 422, "invalid_value"),
        (b'{"messages": [', "application/json", 400, "invalid_json"),
    ],
)
async def test_enqueue_empty_or_broken_body_is_4xx_naming_the_problem(
    client: httpx.AsyncClient, body: bytes, content_type: str, status: int, code: str
) -> None:
    response = await client.post("/enqueue", content=body, headers={"Content-Type": content_type})

    assert response.status_code == status
    assert response.json()["error"]["code"] == code


async def test_enqueue_same_idempotency_key_returns_same_job(client: httpx.AsyncClient) -> None:
    first = await submit(client, Idempotency_Key="order-42")
    again = await submit(client, Idempotency_Key="order-42")
    other = await submit(client, Idempotency_Key="order-43")

    assert first.json()["job_id"] == again.json()["job_id"]
    assert again.json()["duplicate"] is True
    assert other.json()["job_id"] != first.json()["job_id"]
    assert (await client.get("/status")).json()["depth"]["total"] == 2


async def test_enqueue_overlong_idempotency_key_is_422(client: httpx.AsyncClient) -> None:
    response = await submit(client, Idempotency_Key="k" * 300)

    assert response.status_code == 422


async def test_openapi_documents_every_route_and_error_shape(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()

    paths = set(schema["paths"])
    expected = {"/enqueue", "/status", "/status/{job_id}", "/dlq", "/dlq/{entry_id}/retry",
                "/dlq/{entry_id}", "/consumers", "/gpus", "/health", "/livez"}  # fmt: skip
    assert expected <= paths
    assert {"EnqueueResponse", "JobRecord", "ErrorBody", "QueueOverview"} <= set(
        schema["components"]["schemas"]
    )
    assert (await client.get("/docs")).status_code == 200


async def test_events_with_a_malformed_last_event_id_is_400(client: httpx.AsyncClient) -> None:
    job_id = (await submit(client)).json()["job_id"]

    response = await client.get(f"/status/{job_id}/events", headers={"Last-Event-ID": "nope"})

    assert response.status_code == 400
    assert response.json()["error"]["param"] == "Last-Event-ID"
