"""The Lua scripts (files under lua/) and one typed builder per script.

Each builder names the script's KEYS and ARGV in the order the `.lua` file reads them, so the
order is written down once on each side. A script opening with `-- needs: a, b` gets the
helpers `lua/lib/a.lua` and `lua/lib/b.lua` (and what they need) prepended when it is loaded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import Any

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import NoScriptError

from smartqueue.models import JobStatus, sources_of
from smartqueue.store.connection import Client
from smartqueue.store.keys import Counter

Arg = str | bytes | int | float  # one script argument

NAMES = ("batch_feed", "batch_finalizing", "batch_finish", "batch_stop", "breaker_cas", "cancel",
         "dead_letter", "dlq_retry", "enqueue", "expire", "expiring", "finish", "move_due",
         "peek", "reconcile", "renew", "retry_later", "take")  # fmt: skip
EVERYWHERE = Counter.everywhere()

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

    def __init__(self, client: Client) -> None:
        self._client = client
        self._scripts = {name: client.register_script(load_source(name)) for name in NAMES}

    async def run(self, call: ScriptCall) -> Any:
        """Run `call` atomically on the server."""
        return await self._scripts[call.name](keys=call.keys, args=call.args)

    async def run_replicated(self, call: ScriptCall, *, replicas: int, wait_ms: int) -> Replicated:
        """Run `call`, then `WAIT replicas wait_ms` on the same connection (one pipeline).

        WAIT counts the replicas holding every earlier write of its connection, so it must
        follow the script on the connection that ran it. A server without the script (a
        promoted replica, a restart) answers NOSCRIPT without running anything: load, run again.
        """
        script, node = self._scripts[call.name], await self._node_of(call)
        wait = ("WAIT", replicas, wait_ms)
        reply, acknowledged = await self._pipelined(script.sha, call, wait, node)
        if isinstance(reply, NoScriptError):
            await self._client.script_load(script.script)
            reply, acknowledged = await self._pipelined(script.sha, call, wait, node)
        for outcome in (reply, acknowledged):
            if isinstance(outcome, Exception):
                raise outcome
        return Replicated(reply, int(acknowledged), trusted=node == await self._node_of(call))

    async def _pipelined(
        self, sha: str, call: ScriptCall, wait: tuple[str, int, int], node: ClusterNode | None
    ) -> tuple[Any, Any]:
        # On a cluster, WAIT has no key: send it to the node owning the script's keys, where
        # the cluster pipeline puts it on the same connection as the EVALSHA.
        target: dict[str, Any] = {"target_nodes": node} if node is not None else {}
        async with self._client.pipeline(transaction=False) as pipe:
            # (a cluster pipeline refuses .evalsha(); the raw command routes by its keys)
            pipe.execute_command("EVALSHA", sha, len(call.keys), *call.keys, *call.args)
            pipe.execute_command(*wait, **target)
            reply, acknowledged = await pipe.execute(raise_on_error=False)
        return reply, acknowledged

    async def _node_of(self, call: ScriptCall) -> ClusterNode | None:
        if not isinstance(self._client, RedisCluster):
            return None
        await self._client.initialize()  # the slot map, read once (again after a failure)
        return self._client.get_node_from_key(call.keys[0])


@dataclass(frozen=True)
class Replicated:
    """A script's reply and how many replicas acknowledged it (WAIT's answer)."""

    reply: Any
    replicas: int
    trusted: bool = True  # False when the slot moved meanwhile: WAIT may have run elsewhere


@dataclass(frozen=True)
class Change:
    """A lifecycle-guarded status change (lib/transition.lua): allowed sources from the models."""

    target: JobStatus
    ttl_s: int
    updates: Mapping[str, Arg] = field(default_factory=dict)
    events_ttl_s: int = 600  # how long a terminal job's event stream is kept

    def args(self) -> list[Arg]:
        """status, events ttl, record ttl (both 0 unless terminal), n allowed, allowed...,
        then field/value pairs."""
        allowed = sorted(status.value for status in sources_of(self.target))
        terminal = self.target.is_terminal
        events_ttl_s = min(self.events_ttl_s, self.ttl_s) if terminal else 0
        args: list[Arg] = [self.target.value, events_ttl_s, self.ttl_s if terminal else 0,
                           len(allowed), *allowed]  # fmt: skip
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
    *, stream: str, record: str, wake: str, counts: str, idempotency: str | None, job_id: str,
    payload: bytes, headers: str, route: str, priority: str, created_ms: int,
    idempotency_ttl_s: int, path: str, ceiling: int, everywhere_ceiling: int, counter: Counter,
    route_counters: list[tuple[Counter, bool]], owner: str = "", request_digest: str = "",
    size: Sequence[str] = (),
) -> ScriptCall:  # fmt: skip
    """enqueue.lua: `route_counters` are the route's streams, each flagged when it runs first;
    `size` the entry's size fields (queue.size_fields)."""
    keys = [stream, record, wake, counts, *([idempotency] if idempotency else [])]
    args: list[Arg] = [job_id, payload, headers, route, priority, created_ms, idempotency_ttl_s,
                       path, ceiling, everywhere_ceiling, counter.entered, EVERYWHERE.entered,
                       EVERYWHERE.left, owner, request_digest, len(route_counters)]  # fmt: skip
    for route_counter, ahead in route_counters:
        args += [route_counter.entered, route_counter.left, "1" if ahead else "0"]
    return ScriptCall("enqueue", keys, [*args, *size])


def reconcile(*, counts: str, streams: list[tuple[str, Counter]]) -> ScriptCall:
    """reconcile.lua."""
    args: list[Arg] = [EVERYWHERE.entered, EVERYWHERE.left]
    for _, counter in streams:
        args += [counter.entered, counter.left]
    return ScriptCall("reconcile", [counts, *(stream for stream, _ in streams)], args)


def cancel(
    *, record: str, stream: str, delayed: str, events: str, counts: str, counter: Counter,
    job_id: str, channel: str, change: Change,
) -> ScriptCall:  # fmt: skip
    """cancel.lua."""
    return ScriptCall("cancel", [record, stream, delayed, events, counts],
                      [job_id, channel, counter.left, EVERYWHERE.left,
                       *change.args()])  # fmt: skip


@dataclass(frozen=True)
class GpuKeys:
    """The keys of one GPU that the dispatcher reads."""

    slots: str
    ends: str
    breaker: str


def peek(*, counts: str, streams: list[str], gpus: list[GpuKeys], window: int) -> ScriptCall:
    """peek.lua (read only): the first `window` entries of each stream, without payloads, and
    each GPU's live slot leases with their predicted ends and its breaker."""
    keys = [counts, *streams,
            *(key for gpu in gpus for key in (gpu.slots, gpu.ends, gpu.breaker))]  # fmt: skip
    return ScriptCall("peek", keys, [window, len(streams), EVERYWHERE.entered, EVERYWHERE.left])


@dataclass(frozen=True)
class TakeTarget:
    """The waiting entry a consumer chose, with its job's keys."""

    stream: str
    counter: Counter
    entry: str
    job_id: str
    record: str
    events: str
    outranking: tuple[Counter, ...] = ()  # streams whose waiting entries must go first
    replacing: tuple[str, str] | None = None  # the caller's answered job: (job id, running entry)


def take(
    *, slots_key: str, breaker: str, counts: str, ends: str, running: str, target: TakeTarget,
    group: str, consumer: str, slots: int, lease_ms: int, probe: bool, gpu: str,
    started_at: float, channel: str, predicted_end_ms: int | None,
) -> ScriptCall:  # fmt: skip
    """take.lua."""
    keys = [slots_key, breaker, counts, ends, target.stream, running, target.record,
            target.events]  # fmt: skip
    args: list[Arg] = [group, consumer, slots, lease_ms, "1" if probe else "0", target.entry,
                       target.job_id, target.counter.left, EVERYWHERE.left, gpu,
                       repr(started_at), channel,
                       "" if predicted_end_ms is None else predicted_end_ms,
                       *(target.replacing or ("", ""))]  # fmt: skip
    args += [name for counter in target.outranking for name in (counter.entered, counter.left)]
    return ScriptCall("take", keys, args)


def renew(*, held: Held, slots_key: str, lease_ms: int) -> ScriptCall:
    """renew.lua."""
    return ScriptCall("renew", [held.stream, slots_key],
                      [held.group, held.consumer, held.entry, held.job_id, lease_ms])  # fmt: skip


@dataclass(frozen=True)
class BatchLine:
    """A batch request's output or error line, kept with its batch when the request ends."""

    lines: str  # the batch's lines hash
    batch: str  # the batch's record
    custom_id: str
    outcome: str  # "completed" (output file) or "failed" (error file)
    line: bytes


def _held_args(held: Held, channel: str) -> list[Arg]:
    return [held.group, held.consumer, held.entry, held.job_id, channel]


def _line_parts(line: BatchLine | None) -> tuple[list[str], list[Arg]]:
    """The KEYS and ARGV a batch line adds to finish.lua and dead_letter.lua."""
    if line is None:
        return [], ["", "", ""]
    return [line.lines, line.batch], [line.custom_id, line.outcome, line.line]


def _marked(change: Change, held: Held) -> Change:
    """The change, marked with the entry it commits (lib/committed.lua: a re-run finds it)."""
    return replace(change, updates={**change.updates, "committed_by": held.entry})


def finish(
    *, record: str, slots_key: str, ends: str, events: str, held: Held, channel: str,
    change: Change, line: BatchLine | None = None,
) -> ScriptCall:  # fmt: skip
    """finish.lua."""
    line_keys, line_args = _line_parts(line)
    return ScriptCall("finish", [record, held.stream, slots_key, ends, events, *line_keys],
                      [*_held_args(held, channel), *line_args,
                       *_marked(change, held).args()])  # fmt: skip


def retry_later(
    *, record: str, slots_key: str, ends: str, delayed: str, events: str, held: Held,
    channel: str, due_ms: int, change: Change,
) -> ScriptCall:  # fmt: skip
    """retry_later.lua."""
    return ScriptCall("retry_later", [record, held.stream, slots_key, ends, delayed, events],
                      [*_held_args(held, channel), due_ms,
                       *_marked(change, held).args()])  # fmt: skip


def dead_letter(
    *, record: str, dlq: str, slots_key: str, ends: str, events: str, held: Held, channel: str,
    dlq_fields: list[Arg], change: Change, line: BatchLine | None = None,
) -> ScriptCall:  # fmt: skip
    """dead_letter.lua."""
    line_keys, line_args = _line_parts(line)
    keys = [record, dlq, held.stream, slots_key, ends, events, *line_keys]
    args = [*_held_args(held, channel), *line_args, len(dlq_fields), *dlq_fields,
            *_marked(change, held).args()]  # fmt: skip
    return ScriptCall("dead_letter", keys, args)


def dlq_retry(
    *, dlq: str, stream: str, new_record: str, old_record: str, wake: str, counts: str,
    counter: Counter, dlq_entry: str, route: str, priority: str, created_ms: int,
    old_job_id: str, new_job_id: str, fields: list[Arg], owner: str = "",
) -> ScriptCall:  # fmt: skip
    """dlq_retry.lua: the new job belongs to `owner`, the dead job's owner."""
    return ScriptCall("dlq_retry", [dlq, stream, new_record, old_record, wake, counts],
                      [dlq_entry, route, priority, created_ms, old_job_id, new_job_id,
                       counter.entered, EVERYWHERE.entered, owner, *fields])  # fmt: skip


@dataclass(frozen=True)
class DueJob:
    """A job whose backoff is over, with the keys it moves between."""

    job_id: str
    record: str
    events: str
    stream: str
    counter: Counter


def move_due(
    *, delayed: str, wake: str, counts: str, channel: str, jobs: list[DueJob]
) -> ScriptCall:
    """move_due.lua."""
    keys = [delayed, wake, counts]
    args: list[Arg] = [channel, EVERYWHERE.entered]
    for job in jobs:
        keys += [job.record, job.events, job.stream]
        args += [job.job_id, job.counter.entered]
    return ScriptCall("move_due", keys, args)


def expiring(*, counts: str, streams: list[str], cutoff_ms: int, limit: int) -> ScriptCall:
    """expiring.lua (read only)."""
    return ScriptCall("expiring", [counts, *streams],
                      [cutoff_ms, limit, EVERYWHERE.entered, EVERYWHERE.left])  # fmt: skip


@dataclass(frozen=True)
class ExpiredEntry:
    """A waiting entry past its deadline, with its job's keys."""

    entry: str
    job_id: str
    record: str
    events: str


def expire(
    *, stream: str, dlq: str, counts: str, counter: Counter, channel: str,
    ttl_s: int, now: float, error: str, priority: str, route: str, entries: list[ExpiredEntry],
    events_ttl_s: int,
) -> ScriptCall:  # fmt: skip
    """expire.lua."""
    keys = [stream, dlq, counts]
    args: list[Arg] = [channel, ttl_s, repr(now), error, priority, route, counter.left,
                       EVERYWHERE.left, min(events_ttl_s, ttl_s)]  # fmt: skip
    for entry in entries:
        keys += [entry.record, entry.events]
        args += [entry.entry, entry.job_id]
    return ScriptCall("expire", keys, args)


def breaker_cas(*, breaker: str, version: str, fields: list[Arg]) -> ScriptCall:
    """breaker_cas.lua."""
    return ScriptCall("breaker_cas", [breaker], [version, *fields])


@dataclass(frozen=True)
class FedRequest:
    """A batch request about to enter its job stream, with the keys it touches."""

    job_id: str
    payload: bytes
    headers: str
    path: str
    route: str
    custom_id: str
    stream: str
    record: str
    counter: Counter


def batch_feed(
    *, batch: str, counts: str, wake: str, batch_id: str, cursor: int, next_line: int,
    next_offset: int, created_ms: int, owner: str, requests: list[FedRequest],
) -> ScriptCall:  # fmt: skip
    """batch_feed.lua: `cursor` is the batch's cursor as read (the script compares it)."""
    keys = [batch, counts, wake]
    args: list[Arg] = [cursor, next_line, next_offset, batch_id, created_ms, EVERYWHERE.entered,
                       owner]  # fmt: skip
    for request in requests:
        keys += [request.stream, request.record]
        args += [request.job_id, request.payload, request.headers, request.path, request.route,
                 request.custom_id, request.counter.entered]  # fmt: skip
    return ScriptCall("batch_feed", keys, args)


def batch_stop(*, batch: str, why: str, status: str, at_field: str, now: float) -> ScriptCall:
    """batch_stop.lua."""
    return ScriptCall("batch_stop", [batch], [why, status, at_field, repr(now)])


def batch_finalizing(*, batch: str, now: float) -> ScriptCall:
    """batch_finalizing.lua."""
    return ScriptCall("batch_finalizing", [batch], [repr(now)])


@dataclass(frozen=True)
class FileRecord:
    """A file's record as it is written: its key, id, place in its owner's list and fields."""

    key: str
    file_id: str
    listed_at: float
    fields: list[Arg]


def batch_finish(
    *, batch: str, lines: str, open_batches: str, owner_files: str, input_file: str,
    status: str, at_field: str, now: float, completed: int, failed: int, output_id: str,
    error_id: str, files: list[FileRecord],
) -> ScriptCall:  # fmt: skip
    """batch_finish.lua."""
    keys = [batch, lines, open_batches, owner_files, input_file, *(f.key for f in files)]
    args: list[Arg] = [status, at_field, repr(now), completed, failed, output_id, error_id]
    for file in files:
        args += [file.file_id, repr(file.listed_at), len(file.fields), *file.fields]
    return ScriptCall("batch_finish", keys, args)
