"""File bytes in the blob directory (a volume every replica shares), one file per id.

Writes go to a temporary name first and are renamed into place, so a reader sees a whole file
or none, and a crash mid-write leaves nothing under the id.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

CHUNK_BYTES = 1 << 20
FILE_ID = re.compile(r"^file-[A-Za-z0-9_-]{1,80}$")


def new_file_id() -> str:
    """A random, unguessable file id in OpenAI's style."""
    return f"file-{secrets.token_urlsafe(18)}"


class Blobs:
    """The blob directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, file_id: str) -> Path:
        """Where a file's bytes live (ids are checked: no path ever leaves the directory)."""
        if not FILE_ID.match(file_id):
            raise ValueError(f"not a file id: {file_id!r}")
        return self.directory / file_id

    @contextlib.contextmanager
    def writing(self, file_id: str) -> Iterator[BinaryIO]:
        """A file to write `file_id`'s bytes to; in place once the block ends without error."""
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.path(file_id)
        temporary = final.with_name(f".{final.name}.{secrets.token_hex(4)}.tmp")
        try:
            with temporary.open("wb") as out:
                yield out
                out.flush()
                os.fsync(out.fileno())
            temporary.replace(final)
        finally:
            temporary.unlink(missing_ok=True)

    def store(self, file_id: str, source: BinaryIO, *, limit_bytes: int) -> int | None:
        """Copy `source` in as `file_id`; its size, or None (nothing kept) over `limit_bytes`."""
        try:
            with self.writing(file_id) as out:
                while chunk := source.read(CHUNK_BYTES):
                    out.write(chunk)
                    if out.tell() > limit_bytes:
                        raise _TooLarge
                return out.tell()
        except _TooLarge:
            return None

    def read(self, file_id: str) -> bytes:
        """A file's bytes."""
        return self.path(file_id).read_bytes()

    def lines_from(self, file_id: str, offset: int, *, count: int) -> list[tuple[bytes, int]]:
        """Up to `count` non-blank lines from byte `offset`, each with the offset after it."""
        found: list[tuple[bytes, int]] = []
        with self.path(file_id).open("rb") as source:
            source.seek(offset)
            while len(found) < count:
                raw = source.readline()
                if not raw:
                    break
                if raw.strip():
                    found.append((raw.rstrip(b"\r\n"), source.tell()))
        return found

    def delete(self, file_id: str) -> None:
        """Remove a file's bytes (gone already is fine)."""
        self.path(file_id).unlink(missing_ok=True)


class _TooLarge(Exception):
    pass
