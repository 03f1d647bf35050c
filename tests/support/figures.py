"""The one line every reliability scenario prints (RELIABILITY.md collects them).

`report` prints: jobs submitted, accepted, completed, dead, lost, duplicate GPU calls, the most
results any one job committed, and the recovery time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis

from smartqueue.store.keys import Keys


@dataclass(frozen=True)
class Figures:
    """What a scenario did to the jobs it submitted."""

    submitted: int
    accepted: int
    completed: int
    dead: int
    lost: int
    duplicate_gpu_calls: int
    max_results_per_job: int
    recovery_s: float | None = None

    def line(self, scenario: str) -> str:
        """`scenario: submitted=… accepted=… …` — the form RELIABILITY.md quotes."""
        recovery = "n/a" if self.recovery_s is None else f"{self.recovery_s:.1f}s"
        return (f"FIGURES {scenario}: submitted={self.submitted} accepted={self.accepted} "
                f"completed={self.completed} dead={self.dead} lost={self.lost} "
                f"duplicate_gpu_calls={self.duplicate_gpu_calls} "
                f"max_results_per_job={self.max_results_per_job} recovery={recovery}")  # fmt: skip


def report(scenario: str, figures: Figures) -> Figures:
    """Print the scenario's line; the figures, for the asserts that follow."""
    print(figures.line(scenario))
    return figures


def duplicate_calls(calls_by_job: Iterable[Mapping[str, int]]) -> int:
    """GPU calls beyond the first per job, over every GPU's `requests_by_job`."""
    total: dict[str, int] = {}
    for calls in calls_by_job:
        for job_id, count in calls.items():
            total[job_id] = total.get(job_id, 0) + count
    return sum(count - 1 for count in total.values())


async def max_results_per_job(client: aioredis.Redis, keys: Keys, job_ids: Iterable[str]) -> int:
    """The most `completed` commits any one job's event stream holds (the promise: 1)."""
    most = 0
    for job_id in job_ids:
        events = cast(list[tuple[bytes, dict[bytes, bytes]]],
                      await client.xrange(keys.events(job_id)))  # fmt: skip
        most = max(most, sum(1 for _, fields in events if fields.get(b"status") == b"completed"))
    return most


def tally(
    records: Mapping[str, Mapping[str, Any]], *, submitted: int, accepted: int,
    duplicate_gpu_calls: int, max_results: int, recovery_s: float | None,
) -> Figures:  # fmt: skip
    """Figures from the accepted jobs' final records (`lost`: accepted, not ended)."""
    statuses = [record.get("status") for record in records.values()]
    ended = sum(1 for status in statuses if status in ("completed", "dead", "cancelled"))
    return Figures(submitted, accepted, statuses.count("completed"), statuses.count("dead"),
                   accepted - ended, duplicate_gpu_calls, max_results, recovery_s)  # fmt: skip
