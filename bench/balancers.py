"""Queue-side balancers smartqueue is compared with, each sending jobs straight to the sims.

A `ClientQueue` holds jobs in FIFO order on the client and sends the head job whenever its policy
names a GPU:
- `RoundRobin`: the next GPU in turn, always (no cap: a busy GPU queues the job inside itself);
- `LeastConnections`: the GPU with the fewest of the balancer's own jobs in flight, among those
  below their slot count (direct traffic is invisible to it); ties go to the fleet's order;
- `LowestScore`: the draft's rule, lowest 0.6*util + 0.3*vram% + 0.1*max(0, temp-60) from each
  sim's sidecar `/health` (polled), with the same slot caps.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

import httpx


@dataclass(frozen=True)
class Target:
    """A GPU a balancer may send to."""

    name: str
    url: str
    sidecar_url: str
    model: str
    slots: int


@dataclass(frozen=True)
class Job:
    """One benchmark job: its output length and when it arrives (seconds after the start)."""

    index: int
    max_tokens: int
    arrival_s: float

    def body(self, model: str) -> dict[str, object]:
        """The chat request for this job."""
        return {
            "model": model,
            "max_tokens": self.max_tokens,
            "messages": [{"role": "user", "content": f"Job {self.index}: tell a story."}],
        }


@dataclass(frozen=True)
class Timing:
    """When a job arrived, was sent to a GPU and finished (Unix seconds), and where it ran."""

    arrived: float
    dispatched: float
    finished: float
    gpu: str
    ok: bool


class Policy(Protocol):
    """Picks a GPU for the head job, or None to hold it."""

    def choose(self, in_flight: dict[str, int]) -> str | None:
        """The GPU for the next job given the balancer's own in-flight counts."""
        ...


class RoundRobin:
    """Each GPU in turn, whatever its load."""

    def __init__(self, targets: list[Target]) -> None:
        self.turns = itertools.cycle([target.name for target in targets])

    def choose(self, in_flight: dict[str, int]) -> str | None:
        """The next GPU in turn."""
        return next(self.turns)


class LeastConnections:
    """Fewest own jobs in flight, below the GPU's slots; fleet order breaks ties."""

    def __init__(self, targets: list[Target]) -> None:
        self.targets = targets

    def choose(self, in_flight: dict[str, int]) -> str | None:
        """The least-loaded GPU with a free slot, or None."""
        free = [t for t in self.targets if in_flight[t.name] < t.slots]
        return min(free, key=lambda t: in_flight[t.name]).name if free else None


def draft_score(health: dict[str, float]) -> float:
    """The draft's load score of a sidecar reading (lower is better)."""
    vram_pct = 100 * health["vram_used_mb"] / max(1.0, health["vram_total_mb"])
    return 0.6 * health["gpu_util_pct"] + 0.3 * vram_pct + 0.1 * max(0.0, health["temp_c"] - 60)


class LowestScore:
    """Lowest draft score among GPUs with a free slot (own jobs); fleet order breaks ties."""

    def __init__(self, targets: list[Target]) -> None:
        self.targets = targets
        self.scores = {target.name: 0.0 for target in targets}

    def choose(self, in_flight: dict[str, int]) -> str | None:
        """The lowest-scored GPU with a free slot, or None."""
        free = [t for t in self.targets if in_flight[t.name] < t.slots]
        return min(free, key=lambda t: self.scores[t.name]).name if free else None

    async def poll(self, client: httpx.AsyncClient, interval_s: float) -> None:
        """Refresh the scores from every sidecar until cancelled."""
        while True:
            for target in self.targets:
                try:
                    response = await client.get(f"{target.sidecar_url}/health")
                    self.scores[target.name] = draft_score(response.json())
                except (httpx.HTTPError, ValueError, KeyError):
                    self.scores[target.name] = float("inf")
            await asyncio.sleep(interval_s)


async def send(client: httpx.AsyncClient, target: Target, job: Job) -> bool:
    """Run one job on a GPU directly; whether it answered 200."""
    try:
        response = await client.post(
            f"{target.url}/v1/chat/completions", json=job.body(target.model)
        )
    except httpx.HTTPError:
        return False
    return response.status_code == 200


class ClientQueue:
    """FIFO of waiting jobs on the client; the head goes out as soon as the policy names a GPU."""

    def __init__(self, targets: list[Target], policy: Policy, client: httpx.AsyncClient) -> None:
        self.targets = {target.name: target for target in targets}
        self.policy, self.client = policy, client
        self.in_flight = dict.fromkeys(self.targets, 0)
        self.waiting: deque[asyncio.Future[str]] = deque()

    def _pump(self) -> None:
        while self.waiting:
            gpu = self.policy.choose(self.in_flight)
            if gpu is None:
                return
            self.in_flight[gpu] += 1
            self.waiting.popleft().set_result(gpu)

    async def run_job(self, job: Job, arrived: float) -> Timing:
        """Wait for the policy's pick, send, and time it."""
        picked: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.waiting.append(picked)
        self._pump()
        gpu = await picked
        dispatched = time.time()
        try:
            ok = await send(self.client, self.targets[gpu], job)
        finally:
            self.in_flight[gpu] -= 1
            self._pump()
        return Timing(arrived, dispatched, time.time(), gpu, ok)
