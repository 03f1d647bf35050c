"""What the lifecycle log lines rest on: the W3C trace id, token usage, traceparent to the GPU."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from smartqueue.config import parse_fleet
from smartqueue.gpu_client import GpuClient
from smartqueue.logs import JsonFormatter, trace_id, traced
from smartqueue.openai_format import usage_tokens
from smartqueue.queue import StreamEntry

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    ("header", "expected"),
    [(VALID, "4bf92f3577b34da6a3ce929d0e0e4736"),
     (VALID.upper(), "4bf92f3577b34da6a3ce929d0e0e4736"),
     (f" {VALID} ", "4bf92f3577b34da6a3ce929d0e0e4736"),
     (None, None), ("", None), ("garbage", None),
     ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", None),
     ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7", None)],
)  # fmt: skip
def test_trace_id_of_a_traceparent_header(header: str | None, expected: str | None) -> None:
    assert trace_id(header) == expected


def test_traced_adds_the_trace_id_only_when_there_is_one() -> None:
    assert traced({"job_id": "j"}, {"traceparent": VALID})["trace_id"] == VALID[3:35]
    assert traced({"job_id": "j"}, {}) == {"job_id": "j"}


def test_json_formatter_writes_extra_fields_as_keys() -> None:
    record = logging.makeLogRecord({"msg": "completed", "levelname": "INFO", "job_id": "j1",
                                    "tokens": {"total_tokens": 3}})  # fmt: skip

    line = json.loads(JsonFormatter().format(record))

    assert (line["event"], line["job_id"], line["tokens"]) == ("completed", "j1",
                                                               {"total_tokens": 3})  # fmt: skip


@pytest.mark.parametrize(
    ("body", "streamed", "expected"),
    [(b'{"usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}}', False,
      {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}),
     (b'{"choices": []}', False, {}),
     (b"not json", False, {}),
     (b'data: {"choices": [{"delta": {}}]}\n\ndata: {"choices": [], "usage": '
      b'{"completion_tokens": 4}}\n\ndata: [DONE]\n\n', True, {"completion_tokens": 4}),
     (b'data: {"choices": []}\n\ndata: [DONE]\n\n', True, {})],
)  # fmt: skip
def test_usage_tokens_of_an_answer(body: bytes, streamed: bool, expected: dict[str, int]) -> None:
    assert usage_tokens(body, streamed=streamed) == expected


async def test_traceparent_travels_to_the_gpu_with_the_job() -> None:
    url = "http://127.0.0.1:1"
    fleet = parse_fleet({"gpus": [{"name": "g", "url": url, "sidecar_url": url, "engine": "vllm",
                                   "model": "m", "slots": 1, "vram_total_mb": 1}],
                         "routes": {"default": ["g"]}})  # fmt: skip
    entry = StreamEntry("1-0", "job", b"{}", {"traceparent": VALID, "x-syslog-model": "default"})

    async with httpx.AsyncClient() as http:
        headers = GpuClient(http, fleet, max_result_bytes=1000).request_headers(
            fleet.gpu("g"), entry
        )

    assert headers["traceparent"] == VALID
    assert "x-syslog-model" not in headers
