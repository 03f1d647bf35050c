"""The Batch API's pure core: lines checked, routes found, output lines shaped as OpenAI's."""

from __future__ import annotations

import json
from typing import Any

import pytest

from smartqueue.batches import (
    BatchRequest,
    BatchStatus,
    Checking,
    LineError,
    Stop,
    error_line,
    final_status,
    output_line,
    parse_line,
    route_for_model,
    route_room,
    unrun_line,
    validate_input,
)
from smartqueue.config import FleetConfig, parse_fleet

CHAT = "/v1/chat/completions"


@pytest.fixture
def fleet() -> FleetConfig:
    """Two GPUs; `heavy` prefers b, `default` prefers a and falls back to b."""
    gpus = [{"name": n, "url": f"http://gpu-{n}:8000", "sidecar_url": f"http://gpu-{n}:8090",
             "engine": "vllm", "model": f"model-{n}", "slots": 1, "vram_total_mb": 1}
            for n in ("a", "b")]  # fmt: skip
    return parse_fleet({"gpus": gpus, "routes": {"default": ["a", "b"], "heavy": ["b"]}})


def line(**fields: Any) -> bytes:
    """An input line: a valid chat request unless `fields` say otherwise."""
    document = {"custom_id": "c1", "method": "POST", "url": CHAT,
                "body": {"model": "default", "messages": []}, **fields}  # fmt: skip
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("model", "route"),
    [("heavy", "heavy"), ("model-a", "default"), ("model-b", "heavy"), ("gpt-4", None)],
)
def test_route_for_model_route_name_then_the_route_its_gpu_leads(
    fleet: FleetConfig, model: str, route: str | None
) -> None:
    assert route_for_model(fleet, model) == route


@pytest.mark.parametrize(
    ("raw", "code", "param"),
    [
        (b"{oops", "invalid_json_line", None),
        (b"[1]", "invalid_json_line", None),
        (line(custom_id=""), "missing_required_parameter", "custom_id"),
        (line(method="GET"), "invalid_method", "method"),
        (line(url="/v1/completions"), "invalid_url", "url"),
        (line(body="text"), "invalid_body", "body"),
        (line(body={"model": "default", "stream": True}), "invalid_body", "body.stream"),
        (line(body={"model": "nobody-serves-it"}), "model_not_found", "body.model"),
    ],
)
def test_parse_line_names_what_is_wrong(
    fleet: FleetConfig, raw: bytes, code: str, param: str | None
) -> None:
    parsed = parse_line(raw, 7, Checking(fleet, CHAT))

    assert isinstance(parsed, LineError)
    assert (parsed.line, parsed.code, parsed.param) == (7, code, param)


def test_parse_line_route_from_the_creation_header_wins_over_the_model(fleet: FleetConfig) -> None:
    parsed = parse_line(line(), 1, Checking(fleet, CHAT, route="heavy"))

    assert isinstance(parsed, BatchRequest)
    assert (parsed.route, parsed.custom_id, parsed.path) == ("heavy", "c1", CHAT)


def test_validate_input_counts_requests_skips_blank_lines_and_finds_duplicates(
    fleet: FleetConfig,
) -> None:
    data = b"\n".join([line(), b"", line(custom_id="c2"), line(), b""])

    checked = validate_input(data, Checking(fleet, CHAT), max_requests=10)

    assert checked.total == 3
    assert [(e.line, e.code) for e in checked.errors] == [(4, "duplicate_custom_id")]


@pytest.mark.parametrize(
    ("data", "code"), [(b"\n\n", "empty_file"), (b"\n".join([line()] * 3), "too_many_requests")]
)
def test_validate_input_refuses_empty_and_oversized_files(
    fleet: FleetConfig, data: bytes, code: str
) -> None:
    checked = validate_input(data, Checking(fleet, CHAT), max_requests=2)

    assert code in [error.code for error in checked.errors]


def test_output_and_error_lines_have_openai_shape() -> None:
    ok = json.loads(output_line(job_id="j", custom_id="c", status=200, body=b'{"x": 1}'))
    failed = json.loads(error_line(job_id="j", custom_id="c", code="non_retryable",
                                   message="bad", answer=(400, b"not json")))  # fmt: skip
    unrun = json.loads(unrun_line("c", Stop.EXPIRED))

    response = {"status_code": 200, "request_id": "j", "body": {"x": 1}}
    assert ok == {"id": "batch_req_j", "custom_id": "c", "response": response, "error": None}
    assert failed["response"] == {"status_code": 400, "request_id": "j", "body": "not json"}
    assert failed["error"] == {"code": "non_retryable", "message": "bad"}
    assert (unrun["response"], unrun["error"]["code"]) == (None, "batch_expired")


@pytest.mark.parametrize(
    ("stop", "status"),
    [(Stop.NONE, BatchStatus.COMPLETED), (Stop.CANCELLED, BatchStatus.CANCELLED),
     (Stop.EXPIRED, BatchStatus.EXPIRED)],
)  # fmt: skip
def test_final_status_follows_why_feeding_stopped(stop: Stop, status: BatchStatus) -> None:
    assert final_status(stop) is status


@pytest.mark.parametrize(("waiting", "slots", "room"), [(0, 2, 4), (3, 2, 1), (9, 2, 0)])
def test_route_room_keeps_twice_the_slots_waiting(waiting: int, slots: int, room: int) -> None:
    assert route_room(waiting=waiting, slots=slots) == room
