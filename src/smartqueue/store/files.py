"""Files: the records of uploaded and produced files (their bytes live in the blob directory)."""

from __future__ import annotations

from enum import Enum
from typing import cast

from smartqueue.batches import StoredFile
from smartqueue.store.codec import decode_fields
from smartqueue.store.connection import translate_errors
from smartqueue.store.context import StoreContext
from smartqueue.store.scripts import Arg


class Deletion(Enum):
    """What became of a delete."""

    DELETED = "deleted"
    MISSING = "missing"
    IN_USE = "in_use"  # an open batch reads it


def file_fields(file: StoredFile) -> list[Arg]:
    """A file's record as field/value items."""
    return ["id", file.id, "owner", file.owner, "bytes", file.bytes,
            "created_at", file.created_at, "filename", file.filename,
            "purpose", file.purpose]  # fmt: skip


class Files:
    """File records, by id and by owner."""

    def __init__(self, context: StoreContext) -> None:
        self.context = context

    @translate_errors
    async def add(self, file: StoredFile, *, now: float) -> None:
        """Record a file whose bytes are in place, and list it for its owner (one transaction,
        `now` ordering the list)."""
        keys = self.context.keys
        async with self.context.redis.pipeline(transaction=True) as pipe:
            pipe.hset(keys.file(file.id), items=file_fields(file))
            pipe.zadd(keys.files(file.owner), {file.id: now})
            await pipe.execute()

    @translate_errors
    async def get(self, file_id: str) -> StoredFile | None:
        """A file's record; None when unknown."""
        raw = cast(
            dict[bytes, bytes], await self.context.redis.hgetall(self.context.keys.file(file_id))
        )
        if b"id" not in raw:
            return None
        fields = decode_fields(raw)
        return StoredFile(id=fields["id"], owner=fields["owner"], bytes=int(fields["bytes"]),
                          created_at=int(fields["created_at"]), filename=fields["filename"],
                          purpose=fields["purpose"], batch=fields.get("batch", ""))  # fmt: skip

    @translate_errors
    async def ids(self, owner: str) -> list[str]:
        """An owner's file ids, newest first."""
        raw = await self.context.redis.zrevrange(self.context.keys.files(owner), 0, -1)
        return [member.decode() for member in cast(list[bytes], raw)]

    @translate_errors
    async def delete(self, file: StoredFile) -> Deletion:
        """Forget a file unless an open batch reads it (the caller removes its bytes after)."""
        keys, redis = self.context.keys, self.context.redis
        async with redis.pipeline(transaction=True) as pipe:
            await pipe.watch(keys.file(file.id))
            if await pipe.hget(keys.file(file.id), "batch"):
                return Deletion.IN_USE
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.delete(keys.file(file.id))
            pipe.zrem(keys.files(file.owner), file.id)
            deleted, _ = await pipe.execute()
        return Deletion.DELETED if deleted else Deletion.MISSING
