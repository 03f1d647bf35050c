"""Breaker poisoning: what a client sends can never open a GPU's breaker (real processes).

The three attempts of issue 9: a 100,000-deep JSON array sent as text/plain (three times), a
job whose X-Request-Id holds a non-ASCII byte (injected straight into its stream, as a job an
older replica admitted would be), and a 10 MiB X-Syslog-* header. Afterwards every breaker is
closed and a normal job runs at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import redis.asyncio as aioredis

from smartqueue.config import Settings
from smartqueue.models import Priority
from smartqueue.queue import NewJob
from smartqueue.store import Store
from smartqueue.store.keys import Keys
from tests.chaos.conftest import StartReplicas, client_of
from tests.engine.conftest import CHAT, fleet_for, gpu_views, submit, wait_terminal
from tests.support.figures import duplicate_calls, max_results_per_job, report, tally
from tests.support.sim import SimHandle

DEEP = b"[" * 100_000 + b"]" * 100_000
OWNER_HEADER = {"Authorization": "Bearer poisoner"}
ADMIN = {"Authorization": "Bearer t"}  # tests/engine/conftest.py's admin token


async def _inject_unsendable(settings: Settings, fleet_routes: list[str]) -> str:
    """A queued job whose kept header cannot be encoded for a GPU (non-ASCII X-Request-Id)."""
    job = NewJob(job_id="unsendable-job-0000000001", route="default", priority=Priority.NORMAL,
                 payload=b'{"messages":[]}', headers={"x-request-id": "caf\u00e9"},
                 created_at=time.time())  # fmt: skip
    store = Store.connect(settings, routes=fleet_routes)
    try:
        admission = await store.submissions.enqueue(job, ceiling=100, everywhere_ceiling=1000)
    finally:
        await store.aclose()
    assert admission.accepted
    return job.job_id


async def test_poisoning_attempts_open_no_breaker_and_a_normal_job_runs_at_once(
    sims: Callable[..., dict[str, SimHandle]],
    chaos_settings: Callable[..., Settings],
    replicas: StartReplicas,
    redis_client: aioredis.Redis,
    key_prefix: str,
) -> None:
    gpus = sims(a={"slots": 2, "speed": 8}, b={"slots": 2, "speed": 8}, c={"slots": 2, "speed": 8})
    fleet = fleet_for(gpus, {"default": ["a", "b", "c"]}, {"a": 2, "b": 2, "c": 2})
    settings = chaos_settings()
    [replica] = replicas(settings, fleet, 1)
    async with client_of(replica, ADMIN) as client:  # the admin sees every owner's job
        deep = [await client.post("/enqueue", content=DEEP, headers={
            "Content-Type": "text/plain", **OWNER_HEADER}) for _ in range(3)]  # fmt: skip
        deep_json = await client.post("/enqueue", content=DEEP,
                                      headers={"Content-Type": "application/json"})  # fmt: skip
        huge = await _header_answer(client, 10 * 1024 * 1024)
        block_over = await _header_answer(client, 100 * 1024)
        kept_over = await client.post("/enqueue", json=CHAT,
                                      headers={"X-Syslog-Note": "x" * 9_000})  # fmt: skip
        latin1 = [(b"X-Request-Id", "caf\u00e9".encode("latin-1"))]
        non_ascii = await client.post("/enqueue", json=CHAT, headers=latin1)
        unsendable = await _inject_unsendable(settings, fleet.route_names)
        accepted = [answer.json()["job_id"] for answer in deep if answer.status_code == 202]
        poisoned = await wait_terminal(client, [*accepted, unsendable], timeout_s=30)
        started = time.monotonic()
        normal = await submit(client, CHAT)
        [record] = (await wait_terminal(client, [normal], timeout_s=30)).values()
        normal_s = time.monotonic() - started
        breakers = {
            name: view["breaker"]["state"] for name, view in (await gpu_views(client)).items()
        }

    opened = sum(1 for state in breakers.values() if state != "closed")
    records = {**poisoned, normal: record}
    figures = report("breaker poisoning (3 deep arrays, non-ASCII header, 10 MiB header)", tally(
        records, submitted=9, accepted=len(records),
        duplicate_gpu_calls=duplicate_calls(gpu.stats()["requests_by_job"] for gpu in gpus.values()),  # noqa: E501
        max_results=await max_results_per_job(redis_client, Keys(key_prefix), list(records)),
        recovery_s=normal_s))  # fmt: skip
    print(f"  breakers opened={opened}; refused at admission: deep JSON {deep_json.status_code}, "
          f"10 MiB header {huge}, 100 KiB header {block_over}, "
          f"9 KB kept header {kept_over.status_code}, "
          f"non-ASCII header {non_ascii.status_code}; unsendable job "
          f"{poisoned[unsendable]['reason']}; a normal job took {normal_s:.1f} s")  # fmt: skip
    assert opened == 0, breakers
    assert (deep_json.status_code, deep_json.json()["error"]["code"]) == (400, "invalid_json")
    assert huge in (431, "reset")  # the server answers 431 and closes while the client writes
    assert block_over == 431
    assert (kept_over.status_code, kept_over.json()["error"]["code"]) == (431, "headers_too_large")
    assert (non_ascii.status_code, non_ascii.json()["error"]["code"]) == (400, "invalid_header")
    assert (poisoned[unsendable]["status"], poisoned[unsendable]["reason"]) == (
        "dead",
        "invalid_request",
    )
    assert {poisoned[job_id]["reason"] for job_id in accepted} == {"invalid_request"}
    assert not {unsendable, *accepted} & gpu_job_ids(gpus)  # none of them reached a GPU
    assert record["status"] == "completed"
    assert normal_s < 5
    assert figures.lost == 0


async def _header_answer(client: httpx.AsyncClient, size: int) -> int | str:
    """The status a submission with one `size`-byte X-Syslog-* header gets ("reset": cut off)."""
    try:
        answer = await client.post("/enqueue", json=CHAT, headers={"X-Syslog-Note": "x" * size})
    except httpx.TransportError:
        return "reset"
    return answer.status_code


def gpu_job_ids(gpus: dict[str, SimHandle]) -> set[str]:
    """Every job id any GPU received."""
    return {job_id for gpu in gpus.values() for job_id in gpu.stats()["requests_by_job"]}
