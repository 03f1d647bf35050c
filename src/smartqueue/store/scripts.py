"""The Lua scripts (files under lua/) and one typed builder per script.

Each builder names the script's KEYS and ARGV in the order the `.lua` file reads them, so the
order is written down once on each side. A script opening with `-- needs: a, b` gets the
helpers `lua/lib/a.lua` and `lua/lib/b.lua` (and what they need) prepended when it is loaded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import redis.asyncio as aioredis

from smartqueue.models import JobStatus, sources_of

Arg = str | bytes | int | float  # one script argument

NAMES = ("ahead", "breaker_cas", "cancel", "dead_letter", "depths", "dlq_retry", "enqueue",
         "expire", "expiring", "finish", "move_due", "renew", "retry_later", "start",
         "take")  # fmt: skip

_NEEDS = re.compile(r"^-- needs: (.+)$", re.MULTILINE)


def _read(path: str) -> str:
    return resources.files("smartqueue.store").joinpath("lua", path).read_text(encoding="utf-8")


def _needs(source: str) -> list[str]:
    found = _NEEDS.match(source)
    return [name.strip() for name in found.group(1).split(",")] if found else []


def load_source(name: str) -> str:
    """The script `name` with every helper it needs, each once, dependencies first."""
    ordered: list[str] = []

    def visit(helper: str) -> None:
        if helper not in ordered:
            for dependency in _needs(_read(f"lib/{helper}.lua")):
                visit(dependency)
            ordered.append(helper)

    source = _read(f"{name}.lua")
    for helper in _needs(source):
        visit(helper)
    return "\n".join([*(_read(f"lib/{helper}.lua") for helper in ordered), source])


@dataclass(frozen=True)
class ScriptCall:
    """One run of a script: its name, KEYS and ARGV."""

    name: str
    keys: list[str]
    args: list[Arg] = field(default_factory=list)


class Scripts:
    """Every script registered on a client (redis-py reloads one on NOSCRIPT)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._scripts = {name: client.register_script(load_source(name)) for name in NAMES}

    async def run(self, call: ScriptCall) -> Any:
        """Run `call` atomically on the server."""
        return await self._scripts[call.name](keys=call.keys, args=call.args)


@dataclass(frozen=True)
class Change:
    """A lifecycle-guarded status change (lib/transition.lua): allowed sources from the models."""

    target: JobStatus
    ttl_s: int
    updates: Mapping[str, Arg] = field(default_factory=dict)

    def args(self) -> list[Arg]:
        """status, terminal flag, ttl, n allowed, allowed..., then field/value pairs."""
        allowed = sorted(status.value for status in sources_of(self.target))
        terminal = self.target.is_terminal
        args: list[Arg] = [self.target.value, "1" if terminal else "0",
                           self.ttl_s if terminal else 0, len(allowed), *allowed]  # fmt: skip
        for name, value in self.updates.items():
            args += [name, value]
        return args


@dataclass(frozen=True)
class Held:
    """An entry a consumer holds: the stream, the group, who holds it, and the job."""

    stream: str
    group: str
    consumer: str
    entry: str
    job_id: str


def enqueue(
    *, streams: list[str], target: int, record: str, wake: str, idempotency: str | None,
    group: str, ceiling: int, job_id: str, payload: bytes, headers: str, route: str,
    priority: str, created_at: float, idempotency_ttl_s: int, path: str, ahead: list[int],
) -> ScriptCall:  # fmt: skip
    """enqueue.lua: `target` and `ahead` are 1-based indices into `streams`."""
    keys = [*streams, record, wake, *([idempotency] if idempotency else [])]
    args: list[Arg] = [group, len(streams), target, ceiling, job_id, payload, headers, route,
                       priority, created_at, idempotency_ttl_s, path, *ahead]  # fmt: skip
    return ScriptCall("enqueue", keys, args)


def depths(*, streams: list[str], group: str) -> ScriptCall:
    """depths.lua."""
    return ScriptCall("depths", streams, [group])


def ahead(*, stream: str, group: str, entry: str) -> ScriptCall:
    """ahead.lua."""
    return ScriptCall("ahead", [stream], [group, entry])


def cancel(
    *, record: str, stream: str, delayed: str, events: str, job_id: str, channel: str,
    change: Change,
) -> ScriptCall:  # fmt: skip
    """cancel.lua."""
    return ScriptCall("cancel", [record, stream, delayed, events],
                      [job_id, channel, *change.args()])  # fmt: skip


def take(
    *, slots_key: str, breaker: str, streams: Sequence[str], group: str, consumer: str,
    slots: int, lease_ms: int, aging_ms: int, probe: bool, ranks: list[int],
) -> ScriptCall:  # fmt: skip
    """take.lua: one priority rank per stream."""
    args: list[Arg] = [group, consumer, slots, lease_ms, aging_ms, "1" if probe else "0", *ranks]
    return ScriptCall("take", [slots_key, breaker, *streams], args)


def start(
    *, record: str, events: str, slots_key: str, held: Held, gpu: str, channel: str,
    started_at: float,
) -> ScriptCall:  # fmt: skip
    """start.lua."""
    return ScriptCall("start", [record, events, held.stream, slots_key],
                      [held.group, held.entry, held.job_id, gpu, channel, started_at])  # fmt: skip


def renew(*, held: Held, slots_key: str, lease_ms: int) -> ScriptCall:
    """renew.lua."""
    return ScriptCall("renew", [held.stream, slots_key],
                      [held.group, held.consumer, held.entry, held.job_id, lease_ms])  # fmt: skip


def _held_args(held: Held, channel: str) -> list[Arg]:
    return [held.group, held.consumer, held.entry, held.job_id, channel]


def finish(
    *, record: str, slots_key: str, events: str, held: Held, channel: str, change: Change
) -> ScriptCall:
    """finish.lua."""
    return ScriptCall("finish", [record, held.stream, slots_key, events],
                      [*_held_args(held, channel), *change.args()])  # fmt: skip


def retry_later(
    *, record: str, slots_key: str, delayed: str, events: str, held: Held, channel: str,
    due_ms: int, change: Change,
) -> ScriptCall:  # fmt: skip
    """retry_later.lua."""
    return ScriptCall("retry_later", [record, held.stream, slots_key, delayed, events],
                      [*_held_args(held, channel), due_ms, *change.args()])  # fmt: skip


def dead_letter(
    *, record: str, dlq: str, slots_key: str, events: str, held: Held, channel: str,
    dlq_fields: list[Arg], change: Change,
) -> ScriptCall:  # fmt: skip
    """dead_letter.lua."""
    keys = [record, dlq, held.stream, slots_key, events]
    args = [*_held_args(held, channel), len(dlq_fields), *dlq_fields, *change.args()]
    return ScriptCall("dead_letter", keys, args)


def dlq_retry(
    *, dlq: str, stream: str, new_record: str, old_record: str, wake: str, dlq_entry: str,
    route: str, priority: str, created_at: float, old_job_id: str, new_job_id: str,
    fields: list[Arg],
) -> ScriptCall:  # fmt: skip
    """dlq_retry.lua."""
    return ScriptCall("dlq_retry", [dlq, stream, new_record, old_record, wake],
                      [dlq_entry, route, priority, created_at, old_job_id, new_job_id,
                       *fields])  # fmt: skip


@dataclass(frozen=True)
class DueJob:
    """A job whose backoff is over, with the keys it moves between."""

    job_id: str
    record: str
    events: str
    stream: str


def move_due(*, delayed: str, wake: str, channel: str, jobs: list[DueJob]) -> ScriptCall:
    """move_due.lua."""
    keys = [delayed, wake]
    for job in jobs:
        keys += [job.record, job.events, job.stream]
    return ScriptCall("move_due", keys, [channel, *(job.job_id for job in jobs)])


def expiring(*, streams: list[str], group: str, cutoff_ms: int, limit: int) -> ScriptCall:
    """expiring.lua (read only)."""
    return ScriptCall("expiring", streams, [group, cutoff_ms, limit])


@dataclass(frozen=True)
class ExpiredEntry:
    """A waiting entry past its deadline, with its job's keys."""

    entry: str
    job_id: str
    record: str
    events: str


def expire(
    *, stream: str, dlq: str, group: str, channel: str, ttl_s: int, now: float, error: str,
    priority: str, route: str, entries: list[ExpiredEntry],
) -> ScriptCall:  # fmt: skip
    """expire.lua."""
    keys = [stream, dlq]
    args: list[Arg] = [group, channel, ttl_s, repr(now), error, priority, route]
    for entry in entries:
        keys += [entry.record, entry.events]
        args += [entry.entry, entry.job_id]
    return ScriptCall("expire", keys, args)


def breaker_cas(*, breaker: str, version: str, fields: list[Arg]) -> ScriptCall:
    """breaker_cas.lua."""
    return ScriptCall("breaker_cas", [breaker], [version, *fields])
