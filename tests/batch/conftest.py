"""Batch API tests: the real openai client against the app, sim GPUs and a real redis-server."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types import Batch

from smartqueue.config import Settings
from tests.engine.conftest import engine_settings, sims  # noqa: F401  (fixtures)

ENDED = {"completed", "failed", "expired", "cancelled"}


@pytest.fixture
def batch_settings(
    engine_settings: Callable[..., Settings],  # noqa: F811
    tmp_path: Path,
) -> Callable[..., Settings]:
    """Engine test settings with a blob directory of the test's own."""

    def make(**overrides: Any) -> Settings:
        return engine_settings(blob_dir=tmp_path / "blobs", **overrides)

    return make


def openai_client(
    http: httpx.AsyncClient, *, api_key: str = "unused", base_url: str = "http://sq"
) -> openai.AsyncOpenAI:
    """The real openai client, talking to the app through `http` (in-process by default)."""
    # openai ships its own fork of httpx; the ASGI-backed client is compatible at runtime.
    return openai.AsyncOpenAI(
        api_key=api_key, base_url=f"{base_url}/v1", http_client=http,  # type: ignore[arg-type]
        max_retries=0,
    )  # fmt: skip


def chat_line(custom_id: str, *, model: str = "default", max_tokens: int = 4) -> dict[str, Any]:
    """One input line: a chat completion request."""
    body = {"model": model, "messages": [{"role": "user", "content": custom_id}],
            "max_tokens": max_tokens}  # fmt: skip
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    """Lines as a JSONL file."""
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


async def upload(client: openai.AsyncOpenAI, data: bytes) -> str:
    """Upload a batch input file; its id."""
    created = await client.files.create(file=("input.jsonl", io.BytesIO(data)), purpose="batch")
    return created.id


async def wait_batch(
    client: openai.AsyncOpenAI, batch_id: str, *, statuses: set[str] = ENDED,
    timeout_s: float = 60,
) -> Batch:  # fmt: skip
    """Poll until the batch reaches one of `statuses`; the batch."""
    deadline = time.monotonic() + timeout_s
    status = "unknown"
    while time.monotonic() < deadline:
        try:
            batch = await client.batches.retrieve(batch_id)
        except openai.InternalServerError:  # 503 while Redis is down: ask again
            await asyncio.sleep(0.1)
            continue
        if batch.status in statuses:
            return batch
        status = batch.status
        await asyncio.sleep(0.1)
    raise AssertionError(f"batch {batch_id} still {status} after {timeout_s} s")


async def lines_of(client: openai.AsyncOpenAI, file_id: str | None) -> list[dict[str, Any]]:
    """A file's JSONL lines, parsed (none for no file)."""
    if file_id is None:
        return []
    content = await client.files.content(file_id)
    return [json.loads(line) for line in content.content.splitlines() if line.strip()]
