"""Steady submissions through a failover, and the figures that say what it cost.

async with steady_load(client) as load:       # one submission every `interval_s`
    ...disrupt Redis...
figures = await settle(client, load, gpu)     # every accepted job ended or is gone
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx

from tests.engine.conftest import CHAT, TERMINAL
from tests.support.sim import InProcessSim, SimHandle
from tests.support.waiting import wait_until


@dataclass
class Load:
    """What the submitter saw: every answer, and when each accepted job was answered."""

    answers: Counter[str] = field(default_factory=Counter)
    accepted: dict[str, float] = field(default_factory=dict)  # job id -> monotonic time

    @property
    def submitted(self) -> int:
        """Submissions sent."""
        return sum(self.answers.values())

    def accepted_after(self, moment: float) -> int:
        """Submissions answered 202 after `moment` (monotonic)."""
        return sum(1 for at in self.accepted.values() if at > moment)

    def longest_gap_s(self) -> float:
        """The longest time between two 202 answers: time without service."""
        times = sorted(self.accepted.values())
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


async def _submit(client: httpx.AsyncClient, load: Load) -> None:
    try:
        response = await client.post("/enqueue", json=CHAT)
    except httpx.TransportError as error:
        load.answers[type(error).__name__] += 1
        return
    code = response.json().get("error", {}).get("code", "") if response.status_code >= 400 else ""
    load.answers[f"{response.status_code} {code}".strip()] += 1
    if response.status_code == 202:
        load.accepted[response.json()["job_id"]] = time.monotonic()


@asynccontextmanager
async def steady_load(
    client: httpx.AsyncClient, *, interval_s: float = 0.02
) -> AsyncIterator[Load]:
    """Submit one job after another (each `interval_s` apart) until the block ends."""
    load = Load()

    async def run() -> None:
        while True:
            await _submit(client, load)
            await asyncio.sleep(interval_s)

    task = asyncio.create_task(run())
    try:
        yield load
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@dataclass(frozen=True)
class Figures:
    """What a disruption cost, as the issue asks for it."""

    submitted: int
    accepted: int
    completed: int
    lost: int  # accepted, then gone (404)
    duplicate_gpu_calls: int
    without_service_s: float
    answers: dict[str, int]

    def line(self, what: str) -> str:
        """One printable line."""
        return (f"{what}: submitted={self.submitted} accepted={self.accepted} "
                f"completed={self.completed} lost={self.lost} "
                f"duplicate_gpu_calls={self.duplicate_gpu_calls} "
                f"without_service={self.without_service_s:.1f}s "
                f"answers={self.answers}")  # fmt: skip


async def _status(client: httpx.AsyncClient, job_id: str) -> str | None:
    """The job's status, `gone` for 404, None while the service cannot say."""
    try:
        response = await client.get(f"/status/{job_id}")
    except httpx.TransportError:
        return None
    if response.status_code == 404:
        return "gone"
    return str(response.json()["status"]) if response.status_code == 200 else None


async def settle(
    client: httpx.AsyncClient,
    load: Load,
    gpu: SimHandle | InProcessSim,
    *,
    timeout_s: float = 30.0,
) -> Figures:
    """Wait until every accepted job ended or is gone; the figures."""
    final: dict[str, str] = {}

    async def all_settled() -> bool:
        for job_id in load.accepted:
            if job_id not in final:
                status = await _status(client, job_id)
                if status in TERMINAL or status == "gone":
                    final[job_id] = status or ""
        return len(final) == len(load.accepted)

    await wait_until(all_settled, timeout_s=timeout_s, what="every accepted job to end",
                     interval_s=0.2)  # fmt: skip
    calls = gpu.stats()["requests_by_job"]
    outcomes = Counter(final.values())
    return Figures(
        submitted=load.submitted, accepted=len(load.accepted), completed=outcomes["completed"],
        lost=outcomes["gone"], duplicate_gpu_calls=sum(n - 1 for n in calls.values() if n > 1),
        without_service_s=load.longest_gap_s(), answers=dict(load.answers),
    )  # fmt: skip
