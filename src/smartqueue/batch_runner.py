"""Batches on idle capacity: fed a few requests at a time, stopped at their window, ended with
their output and error files. Run by the maintenance task of every replica.

Feeding is lazy: a route never holds more than `batch_waiting_per_slot` x its slots batch
requests waiting, so a large batch neither floods Redis nor stands in front of interactive work
(TAKE ranks the batch streams last). Every step is safe to run on several replicas at once:
the feed moves the batch's cursor atomically, the end of a batch is one script, and the files
are written under a short claim, then renamed into place (a replica that dies meanwhile leaves
the claim to expire and another writes them again).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from smartqueue.batches import (
    BatchRequest,
    BatchStatus,
    Checking,
    Stop,
    StoredBatch,
    StoredFile,
    final_status,
    parse_line,
    route_room,
    unrun_line,
)
from smartqueue.blobs import Blobs
from smartqueue.config import FleetConfig, Settings
from smartqueue.models import new_job_id
from smartqueue.store import Store
from smartqueue.store.batches import parse_kept
from smartqueue.store.scripts import FedRequest

log = logging.getLogger(__name__)

FINALIZE_CLAIM_S = 60  # a replica writing a batch's files holds it this long
LINES_PER_READ = 1000  # lines looked up per round trip while writing files


@dataclass
class Written:
    """An output or error file being written, and its line count."""

    file_id: str
    lines: int = 0


class BatchRunner:
    """Feeds, stops and ends the open batches."""

    def __init__(
        self, settings: Settings, fleet: FleetConfig, *, store: Store, holder: str
    ) -> None:
        self.settings = settings
        self.fleet = fleet
        self.store = store
        self.blobs = Blobs(settings.blob_dir)
        self.holder = holder
        self.route_slots = {route: sum(gpu.slots for gpu in fleet.route_gpus(route))
                            for route in fleet.route_names}  # fmt: skip

    async def tick(self, now: float) -> None:
        """One round over every open batch, oldest first."""
        for batch_id in await self.store.batches.open_ids():
            batch = await self.store.batches.get(batch_id)
            if batch is None:
                continue
            try:
                await self.advance(batch, now=now)
            except OSError as error:  # the blob volume: tell, and try again next round
                log.error("batch files unreadable", extra={"batch_id": batch_id,
                                                           "error": str(error)})  # fmt: skip

    async def advance(self, batch: StoredBatch, *, now: float) -> None:
        """Whatever the batch needs next: expire, feed, finalize."""
        running = batch.status is BatchStatus.IN_PROGRESS and batch.stop is Stop.NONE
        if running and now >= batch.expires_at:
            await self.store.batches.stop(batch.id, Stop.EXPIRED, now=now)
            log.info("batch expired", extra={"batch_id": batch.id})
        elif running and batch.fed < batch.total:
            await self.feed(batch, now=now)
        if await self.store.batches.to_finalizing(batch.id, now=now):
            log.info("batch finalizing", extra={"batch_id": batch.id})
        current = await self.store.batches.get(batch.id)
        if current is not None and current.status is BatchStatus.FINALIZING:
            await self.finalize(current, now=now)

    # --- feeding -----------------------------------------------------------------------------

    async def feed(self, batch: StoredBatch, *, now: float) -> int:
        """Put the batch's next requests in line, as many as their routes have room for."""
        room = {route: route_room(waiting=waiting, slots=self.route_slots[route],
                                  per_slot=self.settings.batch_waiting_per_slot)
                for route, waiting in (await self.store.batches.waiting(
                    self.fleet.route_names)).items()}  # fmt: skip
        wanted = min(self.settings.batch_feed_chunk, batch.total - batch.fed, sum(room.values()))
        if wanted <= 0:
            return 0
        lines = self.blobs.lines_from(batch.input_file_id, batch.next_offset, count=wanted)
        requests, offset = self._fitting(batch, lines, room)
        if not requests:
            return 0
        return await self.store.batches.feed(batch, requests, next_offset=offset, now=now)

    def _fitting(
        self, batch: StoredBatch, lines: list[tuple[bytes, int]], room: dict[str, int]
    ) -> tuple[list[FedRequest], int]:
        """The leading requests whose routes have room (in file order), and the offset after."""
        checking = Checking(self.fleet, batch.endpoint, batch.route or None)
        requests: list[FedRequest] = []
        offset = batch.next_offset
        for number, (raw, after) in enumerate(lines, start=batch.fed + 1):
            request = self._request(raw, number, checking)
            if room.get(request.route, 0) <= 0:
                break
            room[request.route] -= 1
            requests.append(self.store.batches.fed_request(
                job_id=new_job_id(), route=request.route, custom_id=request.custom_id,
                path=request.path, payload=request.body,
            ))  # fmt: skip
            offset = after
        return requests, offset

    def _request(self, raw: bytes, number: int, checking: Checking) -> BatchRequest:
        parsed = parse_line(raw, number, checking)
        if isinstance(parsed, BatchRequest):
            return parsed
        # Valid at creation, so only a fleet change since can do this: run it on `default`.
        document = json.loads(raw)
        return BatchRequest(number, str(document["custom_id"]), "default", checking.endpoint,
                            json.dumps(document["body"]).encode())  # fmt: skip

    # --- ending ------------------------------------------------------------------------------

    async def finalize(self, batch: StoredBatch, *, now: float) -> None:
        """Write the output and error files in input order, then end the batch with them."""
        claimed = await self.store.batches.claim_finalizer(
            batch.id, holder=self.holder, ttl_s=FINALIZE_CLAIM_S
        )
        if not claimed:
            return
        try:
            await self._write_and_end(batch, now=now)
        except BaseException:  # let another round (or replica) write them without waiting
            await self.store.batches.release_finalizer(batch.id, holder=self.holder)
            raise

    async def _write_and_end(self, batch: StoredBatch, *, now: float) -> None:
        output, errors = await self._write_files(batch)
        for written in (output, errors):
            if not written.lines:
                self.blobs.delete(written.file_id)
        roles = (("output", output), ("error", errors))
        files = [(role, self._file_record(batch, role, written, now=now))
                 for role, written in roles if written.lines]  # fmt: skip
        status, counts = final_status(batch.stop), (output.lines, errors.lines)
        if await self.store.batches.finish(batch, status, now=now, counts=counts, files=files):
            log.info("batch ended", extra={"batch_id": batch.id, "status": status.value,
                                           "completed": counts[0],
                                           "failed": counts[1]})  # fmt: skip

    async def _write_files(self, batch: StoredBatch) -> tuple[Written, Written]:
        suffix = batch.id.removeprefix("batch_")
        output, errors = Written(f"file-{suffix}-output"), Written(f"file-{suffix}-error")
        with self.blobs.writing(output.file_id) as out, self.blobs.writing(errors.file_id) as err:
            offset = 0
            while chunk := self.blobs.lines_from(batch.input_file_id, offset, count=LINES_PER_READ):
                offset = chunk[-1][1]
                custom_ids = [str(json.loads(raw)["custom_id"]) for raw, _ in chunk]
                kept = await self.store.batches.lines(batch.id, custom_ids)
                for custom_id, value in zip(custom_ids, kept, strict=True):
                    outcome, line = parse_kept(value) if value else ("failed", b"")
                    target = output if outcome == "completed" else errors
                    (out if target is output else err).write(
                        (line or unrun_line(custom_id, batch.stop)) + b"\n"
                    )
                    target.lines += 1
        return output, errors

    def _file_record(
        self, batch: StoredBatch, role: str, written: Written, *, now: float
    ) -> StoredFile:
        size = self.blobs.path(written.file_id).stat().st_size
        return StoredFile(id=written.file_id, owner=batch.owner, bytes=size, created_at=int(now),
                          filename=f"{batch.id}_{role}.jsonl", purpose="batch_output")  # fmt: skip
