"""Direct traffic counts: a GPU loaded by requests sent straight to it gets fewer queued jobs.

Nginx's direct path reaches a GPU without smartqueue, so its own in-flight count misses that
load; the engine's `/metrics` (running, waiting) shows it, and the choice follows.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from smartqueue.config import Settings
from tests.engine.conftest import (
    direct_client,
    fleet_for,
    gpu_views,
    service,
    slow_chat,
    submit,
    wait_terminal,
)
from tests.support.sim import InProcessSim
from tests.support.waiting import wait_until

JOBS = 16
DIRECT_REQUESTS = 3


@asynccontextmanager
async def direct_load(sim: InProcessSim, model: str, *, requests: int) -> AsyncIterator[None]:
    """Long generations posted straight to the sim (as nginx's direct path would) while inside."""
    body = slow_chat(400, model=model)
    async with direct_client() as client:
        url = f"{sim.url}/v1/chat/completions"
        tasks = [asyncio.create_task(client.post(url, json=body)) for _ in range(requests)]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def test_direct_traffic_loaded_gpu_receives_fewer_queued_jobs(
    sims: Callable[..., dict[str, InProcessSim]], engine_settings: Callable[..., Settings]
) -> None:
    gpus = sims(loaded={"slots": 4, "speed": 1.0}, idle={"slots": 4, "speed": 1.0})
    fleet = fleet_for(gpus, {"default": ["loaded", "idle"]}, {"loaded": 4, "idle": 4})
    async with (
        direct_load(gpus["loaded"], "model-loaded", requests=DIRECT_REQUESTS),
        service(engine_settings(), fleet) as client,
    ):

        async def load_seen() -> bool:
            views = await gpu_views(client)
            engine = (views["loaded"]["health"] or {}).get("engine") or {}
            return bool(engine.get("running") == DIRECT_REQUESTS)

        await wait_until(load_seen, timeout_s=10, what="the prober to see the direct load")
        job_ids = [await submit(client, slow_chat(8)) for _ in range(JOBS)]
        records = await wait_terminal(client, job_ids, timeout_s=60)
        seen = (await gpu_views(client))["loaded"]["health"]

    served = Counter(record["gpu"] for record in records.values())
    print(f"direct traffic: {DIRECT_REQUESTS} requests sent straight to 'loaded' (preferred); "
          f"of {JOBS} queued jobs 'loaded' got {served['loaded']}, 'idle' got {served['idle']}; "
          f"'loaded' scored {seen['load_score']} with engine {seen['engine']}")  # fmt: skip
    assert {record["status"] for record in records.values()} == {"completed"}
    assert served["loaded"] < served["idle"]
