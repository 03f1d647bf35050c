"""A GPU's circuit breaker, shared by two replicas (processes), measured at the GPU itself.

A sampler thread reads, over and over, the sim's request count, the breaker in Redis, then the
count again. Breaker states change in one order only (closed -> open -> half-open -> open or
closed, each opening with a new `opened_at`), so a sample that still sees the same open window
proves no call was sent since the window began; the calls between two windows are the probes.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from typing import cast

import redis

from smartqueue.config import Settings
from smartqueue.store.keys import Keys
from tests.chaos.conftest import StartReplicas, client_of
from tests.engine.conftest import fleet_for, slow_chat, submit, wait_terminal
from tests.support.redis_server import RedisServer
from tests.support.sim import SimHandle
from tests.support.waiting import wait_until

FAILED_PROBES = 2


@dataclass(frozen=True)
class Sample:
    """GPU calls counted before and after reading the breaker, and the breaker's window."""

    calls_before: int
    window: tuple[str, str]  # (state, opened_at or probe_deadline): one id per window
    calls_after: int


class BreakerSampler:
    """Samples (calls, breaker, calls) in a thread until stopped."""

    def __init__(self, gpu: SimHandle, redis_url: str, breaker_key: str) -> None:
        self.gpu = gpu
        self.redis = redis.Redis.from_url(redis_url)
        self.key = breaker_key
        self.samples: list[Sample] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        """Sample every few milliseconds until `stopped` is set."""
        while not self.stopped.is_set():
            before = self.gpu.stats()["requests_total"]
            raw = cast(dict[bytes, bytes], self.redis.hgetall(self.key))
            fields = {name.decode(): value.decode() for name, value in raw.items()}
            state = fields.get("state", "closed")
            mark = fields.get("probe_deadline" if state == "half_open" else "opened_at", "")
            after = self.gpu.stats()["requests_total"]
            self.samples.append(Sample(before, (state, mark), after))
            time.sleep(0.005)
        self.redis.close()

    def windows(self, state: str) -> dict[str, list[Sample]]:
        """Samples of each window in `state`, by window id, in the order they began."""
        windows: dict[str, list[Sample]] = {}
        for sample in self.samples:
            if sample.window[0] == state:
                windows.setdefault(sample.window[1], []).append(sample)
        return windows


def settled(window: list[Sample]) -> Sample:
    """A sample taken once `window` had surely begun (its second one, when there is one)."""
    return window[min(1, len(window) - 1)]


def calls_while_open(window: list[Sample]) -> int:
    """Calls the GPU received while one open window lasted (0 when the breaker holds)."""
    return window[-1].calls_before - window[0].calls_after


async def test_breaker_opens_after_three_failures_sends_nothing_while_open_probes_once(
    sims: Callable[..., dict[str, SimHandle]],
    chaos_settings: Callable[..., Settings],
    replicas: StartReplicas,
    redis_server: RedisServer,
    key_prefix: str,
) -> None:
    gpus = sims(a={"slots": 2, "speed": 1, "fault": "error"})
    fleet = fleet_for(gpus, {"default": ["a"]}, {"a": 2})
    settings = chaos_settings(max_retries=50, breaker_recovery_s=1.0, retry_cap_s=0.2)
    sampler = BreakerSampler(gpus["a"], redis_server.url, Keys(key_prefix).breaker("a"))
    first, second = replicas(settings, fleet, 2)
    sampling = asyncio.create_task(asyncio.to_thread(sampler.run))

    def opened_windows() -> dict[str, list[Sample]]:
        return sampler.windows("open")

    async with client_of(first) as one, client_of(second) as two:
        job_ids = [await submit(one, slow_chat(20))]
        await wait_until(lambda: _true(bool(opened_windows())), timeout_s=20,
                         what="the breaker to open")  # fmt: skip
        job_ids += [await submit(one if i % 2 else two, slow_chat(20)) for i in range(5)]
        await wait_until(lambda: _true(len(opened_windows()) > FAILED_PROBES), timeout_s=20,
                         what=f"{FAILED_PROBES} failed probes")  # fmt: skip
        gpus["a"].set_faults("none")
        records = await wait_terminal(one, job_ids, timeout_s=30)
    sampler.stopped.set()
    await sampling

    opens = list(sampler.windows("open").values())
    last_open = max(i for i, sample in enumerate(sampler.samples) if sample.window[0] == "open")
    final_probe = [s for s in sampler.samples[last_open:] if s.window[0] == "half_open"]
    calls_to_open = settled(opens[0]).calls_before
    while_open = [calls_while_open(window) for window in opens]
    probes = [settled(b).calls_before - a[-1].calls_before for a, b in pairwise(opens)]
    probes.append(final_probe[-1].calls_before - opens[-1][-1].calls_before)
    print(f"breaker: opened after {calls_to_open} failed calls; calls while open per window="
          f"{while_open}; probes per half-open window={probes}; "
          f"closed at the end: {sampler.samples[-1].window[0] == 'closed'}")  # fmt: skip
    assert calls_to_open == settings.breaker_failure_threshold
    assert len(opens) == FAILED_PROBES + 1
    assert while_open == [0] * len(opens)
    assert probes == [1] * len(opens)
    assert sampler.samples[-1].window[0] == "closed", "closes once the probe succeeds"
    assert {record["status"] for record in records.values()} == {"completed"}


async def _true(value: bool) -> bool:
    return value
