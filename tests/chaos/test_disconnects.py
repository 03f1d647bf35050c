"""A client that hangs up on a held front-door request stops its job (real service process)."""

from __future__ import annotations

from collections.abc import Callable

from smartqueue.config import Settings
from tests.chaos.conftest import StartReplicas, client_of
from tests.engine.conftest import fleet_for, job_record, slow_chat
from tests.support.sim import SimHandle
from tests.support.waiting import wait_until


async def test_streamed_client_that_disconnects_cancels_its_running_job(
    sims: Callable[..., dict[str, SimHandle]],
    chaos_settings: Callable[..., Settings],
    replicas: StartReplicas,
) -> None:
    gpus = sims(a={"slots": 1, "speed": 1.0})  # a long generation: ~1000 tokens at real speed
    [replica] = replicas(chaos_settings(), fleet_for(gpus, {"default": ["a"]}, {"a": 1}), 1)

    async with client_of(replica) as client:
        body = slow_chat(1000, stream=True)
        async with client.stream("POST", "/v1/chat/completions", json=body) as response:
            job_id = response.headers["x-smartqueue-job-id"]
            async for _ in response.aiter_bytes():
                break  # the first chunk arrived: hang up

        async def cancelled() -> bool:
            return bool((await job_record(client, job_id))["status"] == "cancelled")

        await wait_until(cancelled, timeout_s=15, what="the job cancelled")

    async def gpu_idle() -> bool:
        return bool(gpus["a"].stats()["in_flight"] == 0)

    await wait_until(gpu_idle, timeout_s=15, what="the GPU call aborted")
