"""The trust boundary in-process: owners, per-owner idempotency, unknown outcomes, bad input."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from redis.exceptions import TimeoutError as RedisTimeoutError

from smartqueue.config import FleetConfig, Settings
from smartqueue.errors import StoreUnavailable
from smartqueue.queue import Lease
from smartqueue.store import Store
from smartqueue.store.jobs import Jobs
from smartqueue.store.scripts import ScriptCall, Scripts
from tests.api.conftest import ADMIN_TOKEN, CHAT, SettingsFactory
from tests.support.app_client import app_client
from tests.support.figures import Figures, report

ALICE = {"Authorization": "Bearer alice-key"}
BOB = {"Authorization": "Bearer bob-key"}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
DEEP = b"[" * 100_000 + b"]" * 100_000


async def _enqueue(client: httpx.AsyncClient, headers: dict[str, str], **extra: Any) -> str:
    answer = await client.post("/enqueue", json=extra.pop("body", CHAT), headers=headers)
    assert answer.status_code == 202, answer.text
    job_id: str = answer.json()["job_id"]
    return job_id


async def test_ownership_other_owner_gets_404_owner_and_admin_see_job(
    client: httpx.AsyncClient,
) -> None:
    job_id = await _enqueue(client, ALICE)

    async def reads(headers: dict[str, str], *, events: bool) -> list[int]:
        codes = [(await client.get(f"/status/{job_id}", headers=headers)).status_code]
        if events:  # a stranger's request ends at once; the owner's would stream on
            codes.append(
                (await client.get(f"/status/{job_id}/events", headers=headers)).status_code
            )
        return codes

    answers = {
        "alice": await reads(ALICE, events=False),
        "bob": await reads(BOB, events=True),
        "anonymous": await reads({}, events=True),
        "admin": await reads(ADMIN, events=False),
    }
    bob_cancel = await client.post(f"/status/{job_id}/cancel", headers=BOB)
    still = (await client.get(f"/status/{job_id}", headers=ALICE)).json()["status"]
    alice_cancel = await client.post(f"/status/{job_id}/cancel", headers=ALICE)

    assert answers["alice"][0] == 200
    assert answers["bob"] == [404, 404]
    assert answers["anonymous"] == [404, 404]
    assert answers["admin"][0] == 200
    assert (bob_cancel.status_code, still) == (404, "queued")
    assert alice_cancel.json()["status"] == "cancelled"
    report("ownership (another owner's status, events, cancel)", Figures(
        submitted=1, accepted=1, completed=0, dead=0, lost=0, duplicate_gpu_calls=0,
        max_results_per_job=0))  # fmt: skip


async def test_ownership_listings_show_job_ids_to_admins_only(
    client: httpx.AsyncClient, store: Store
) -> None:
    job_id = await _enqueue(client, ALICE)
    lease = Lease(lease_ms=30_000, aging_ms=30_000)
    job = await store.claims.take("amdpve", slots=4, routes=["default"], consumer="c1", lease=lease)
    assert job is not None
    await store.claims.dead_letter(job, consumer="c1", reason="non_retryable", error=None,
                                   now=time.time())  # fmt: skip

    public = [(await client.get(path, headers=ALICE)).text for path in ("/dlq", "/consumers")]
    admin_dlq = (await client.get("/dlq", headers=ADMIN)).json()

    assert all(job_id not in text for text in public)
    assert admin_dlq["entries"][0]["job_id"] == job_id


async def test_idempotency_keys_are_per_owner_and_a_reused_key_is_422(
    client: httpx.AsyncClient,
) -> None:
    key = {"Idempotency-Key": "order-42"}
    alice = await _enqueue(client, {**ALICE, **key})
    bob = await _enqueue(client, {**BOB, **key})
    again = await client.post("/enqueue", json=CHAT, headers={**ALICE, **key})
    other_body = await client.post("/enqueue", json={**CHAT, "max_tokens": 9},
                                   headers={**ALICE, **key})  # fmt: skip
    heavy = {**ALICE, **key, "X-Syslog-Model": "heavy"}
    other_route = await client.post("/enqueue", json=CHAT, headers=heavy)

    assert alice != bob
    assert (again.json()["job_id"], again.json()["duplicate"]) == (alice, True)
    assert (other_body.status_code, other_body.json()["error"]["code"]) == (
        422, "idempotency_key_reused")  # fmt: skip
    assert other_route.json()["error"]["code"] == "idempotency_key_reused"


async def test_duplicate_submission_answers_the_jobs_current_status(
    client: httpx.AsyncClient,
) -> None:
    key = {**ALICE, "Idempotency-Key": "k-1"}
    job_id = await _enqueue(client, key)
    await client.post(f"/status/{job_id}/cancel", headers=ALICE)

    again = (await client.post("/enqueue", json=CHAT, headers=key)).json()

    assert (again["job_id"], again["status"], again["duplicate"]) == (job_id, "cancelled", True)


@pytest.mark.parametrize(
    ("content", "content_type", "path"),
    [
        (b"false", "application/json", "/enqueue"),
        (b"[]", "application/json", "/enqueue"),
        (b"42", "application/json; charset=utf-8", "/enqueue"),
        (DEEP, "application/json", "/enqueue"),
        (DEEP, "application/json", "/v1/chat/completions"),
        (DEEP, "text/plain", "/v1/completions"),
    ],
)
async def test_admission_json_not_an_object_or_too_deep_is_400_invalid_json(
    client: httpx.AsyncClient, content: bytes, content_type: str, path: str
) -> None:
    answer = await client.post(path, content=content, headers={"Content-Type": content_type})
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "invalid_json")


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({"X-Request-Id": "caf\u00e9".encode("latin-1")}, 400, "invalid_header"),
        ({"X-Syslog-Note": "bell\x07"}, 400, "invalid_header"),
        ({"X-Syslog-Note": "x" * 9_000}, 431, "headers_too_large"),
        ({f"X-Syslog-N{i}": "x" * 4_000 for i in range(5)}, 431, "headers_too_large"),
    ],
)
async def test_admission_kept_headers_unsendable_or_over_limits_are_refused(
    client: httpx.AsyncClient, headers: dict[str, Any], status: int, code: str
) -> None:
    answer = await client.post("/enqueue", json=CHAT, headers=headers)
    assert (answer.status_code, answer.json()["error"]["code"]) == (status, code)


async def test_enqueue_redis_fails_after_applying_is_503_outcome_unknown_and_a_retry_resolves(
    make_settings: SettingsFactory, local_fleet: FleetConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_run = Scripts.run
    lose_replies = True

    async def applied_then_lost(self: Scripts, call: ScriptCall) -> Any:
        reply = await real_run(self, call)
        if lose_replies and call.name == "enqueue":
            raise RedisTimeoutError("Timeout reading from 10.0.0.7:6379")
        return reply

    monkeypatch.setattr(Scripts, "run", applied_then_lost)
    headers = {**ALICE, "Idempotency-Key": "lost-reply"}
    async with app_client(make_settings(), local_fleet) as client:
        unknown = await client.post("/enqueue", json=CHAT, headers=headers)
        lose_replies = False
        retried = await client.post("/enqueue", json=CHAT, headers=headers)
        located = await client.get(unknown.headers["Location"], headers=ALICE)

    job_id = unknown.headers["Location"].removeprefix("/status/")
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (503, "outcome_unknown")
    assert job_id in unknown.json()["error"]["message"]
    assert "10.0.0.7" not in unknown.text
    assert (retried.json()["job_id"], retried.json()["duplicate"]) == (job_id, True)
    assert located.json()["status"] == "queued"


async def test_store_unavailable_body_names_no_internal_address(
    make_settings: SettingsFactory, local_fleet: FleetConfig
) -> None:
    settings: Settings = make_settings(redis_url="redis://127.0.0.1:1/0")
    async with app_client(settings, local_fleet) as client:
        answers = [await client.get("/status"), await client.get("/dlq"),
                   await client.post("/enqueue", json=CHAT)]  # fmt: skip

    for answer in answers:
        assert answer.status_code == 503, answer.text
        assert "127.0.0.1" not in answer.text
        assert ":1" not in answer.text
        assert "Traceback" not in answer.text


async def test_held_request_that_loses_redis_is_503_with_location_and_job_id(
    make_settings: SettingsFactory, local_fleet: FleetConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def redis_gone(self: Jobs, job_id: str) -> None:
        raise StoreUnavailable()

    monkeypatch.setattr(Jobs, "get", redis_gone)
    async with app_client(make_settings(), local_fleet) as client:
        answer = await client.post("/v1/chat/completions", json=CHAT, headers=ALICE)

    assert (answer.status_code, answer.json()["error"]["code"]) == (503, "outcome_unknown")
    job_id = answer.headers["Location"].removeprefix("/status/")
    assert job_id in answer.json()["error"]["message"]
    assert int(answer.headers["Retry-After"]) >= 1
