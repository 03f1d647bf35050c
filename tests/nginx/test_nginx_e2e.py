"""The rendered config run by the real nginx, with stand-in GPUs and queue on loopback."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.nginx.fleets import fleet_of
from tests.nginx.nginx_process import running_nginx
from tests.nginx.standins import Behaviour, Blackhole, StandIn
from tests.support.ports import free_port

pytestmark = pytest.mark.slow

CHAT = "/v1/chat/completions"
BODY = b'{"model": "any", "messages": [{"role": "user", "content": "hi"}]}'


def refused_url() -> str:
    """A loopback URL nothing listens on: connecting is refused."""
    return f"http://127.0.0.1:{free_port()}"


async def post_chat(base_url: str, **headers: str) -> httpx.Response:
    """POST a chat completion through nginx."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        return await client.post(CHAT, content=BODY, headers=headers)


async def test_route_header_selects_upstream_and_reports_x_routed_to(
    nginx_binary: str, tmp_path: Path
) -> None:
    async with StandIn("a") as a, StandIn("b") as b, StandIn("queue") as queue:
        fleet = fleet_of({"a": a.url, "b": b.url}, {"default": ["a", "b"], "heavy": ["b", "a"]})
        async with running_nginx(nginx_binary, tmp_path, fleet, queue_url=queue.url) as url:
            heavy = await post_chat(url, **{"X-Syslog-Model": "heavy"})
            upper = await post_chat(url, **{"X-Syslog-Model": "HEAVY"})
            unknown = await post_chat(url, **{"X-Syslog-Model": "no-such-route"})
            missing = await post_chat(url)
    assert heavy.json()["served_by"] == upper.json()["served_by"] == "b"
    assert heavy.headers["X-Routed-To"] == f"route-heavy 127.0.0.1:{b.port}"
    assert unknown.json()["served_by"] == missing.json()["served_by"] == "a"
    assert missing.headers["X-Routed-To"] == f"route-default 127.0.0.1:{a.port}"
    assert [r.body for r in b.requests] == [BODY, BODY]
    assert queue.requests == []


async def test_models_with_route_header_goes_to_default_upstream(
    nginx_binary: str, tmp_path: Path
) -> None:
    async with StandIn("a") as a, StandIn("b") as b:
        fleet = fleet_of({"a": a.url, "b": b.url}, {"default": ["a"], "heavy": ["b"]})
        async with (
            running_nginx(nginx_binary, tmp_path, fleet) as url,
            httpx.AsyncClient(base_url=url, timeout=10) as client,
        ):
            answer = await client.get("/v1/models", headers={"X-Syslog-Model": "heavy"})
    assert answer.json()["served_by"] == "a"
    assert [(r.method, r.path) for r in a.requests] == [("GET", "/v1/models")]


async def test_preferred_gpu_refusing_backup_gpu_answers(nginx_binary: str, tmp_path: Path) -> None:
    async with StandIn("b") as b, StandIn("queue") as queue:
        fleet = fleet_of({"a": refused_url(), "b": b.url}, {"default": ["a", "b"]})
        async with running_nginx(nginx_binary, tmp_path, fleet, queue_url=queue.url) as url:
            answer = await post_chat(url)
    assert answer.status_code == 200
    assert answer.json()["served_by"] == "b"
    assert answer.headers["X-Routed-To"].endswith(f", 127.0.0.1:{b.port}")
    assert [r.body for r in b.requests] == [BODY]
    assert queue.requests == []


async def test_all_gpus_refusing_request_reaches_queue_with_credential_without_cookies(
    nginx_binary: str, tmp_path: Path
) -> None:
    headers = {
        "Authorization": "Bearer client-secret",
        "Cookie": "session=abc",
        "X-Syslog-Model": "heavy",
        "X-Syslog-Priority": "high",
        "Content-Type": "application/json",
    }
    async with StandIn("queue") as queue:
        urls = {"a": refused_url(), "b": refused_url()}
        fleet = fleet_of(urls, {"default": ["a"], "heavy": ["b", "a"]})
        async with running_nginx(nginx_binary, tmp_path, fleet, queue_url=queue.url) as url:
            answer = await post_chat(url, **headers)
    assert answer.status_code == 200
    assert answer.json()["served_by"] == "queue"
    assert answer.headers["X-Routed-To"].startswith("queue ")
    [forwarded] = queue.requests
    assert (forwarded.method, forwarded.path, forwarded.body) == ("POST", CHAT, BODY)
    assert forwarded.headers["x-syslog-model"] == "heavy"
    assert forwarded.headers["x-syslog-priority"] == "high"
    assert forwarded.headers["content-type"] == "application/json"
    assert forwarded.headers["authorization"] == "Bearer client-secret"  # the job's owner
    assert "cookie" not in forwarded.headers


async def test_preferred_gpu_connect_timeout_backup_gpu_answers(
    nginx_binary: str, tmp_path: Path
) -> None:
    with Blackhole() as a:
        async with StandIn("b") as b, StandIn("queue") as queue:
            fleet = fleet_of({"a": a.url, "b": b.url}, {"default": ["a", "b"]})
            async with running_nginx(
                nginx_binary, tmp_path, fleet, queue_url=queue.url, connect_timeout_s=1
            ) as url:
                answer = await post_chat(url)
    assert answer.json()["served_by"] == "b"
    assert [r.body for r in b.requests] == [BODY]
    assert queue.requests == []


async def test_only_gpu_connect_timeout_request_falls_back_to_queue(
    nginx_binary: str, tmp_path: Path
) -> None:
    with Blackhole() as a:
        async with StandIn("queue") as queue:
            fleet = fleet_of({"a": a.url}, {"default": ["a"]})
            async with running_nginx(
                nginx_binary, tmp_path, fleet, queue_url=queue.url, connect_timeout_s=1
            ) as url:
                answer = await post_chat(url, **{"X-Syslog-Model": "no-such-route"})
    assert answer.json()["served_by"] == "queue"
    [forwarded] = queue.requests
    assert (forwarded.path, forwarded.body) == (CHAT, BODY)
    assert forwarded.headers["x-syslog-model"] == "default"


async def test_gpu_answering_503_request_falls_back_to_queue(
    nginx_binary: str, tmp_path: Path
) -> None:
    async with (
        StandIn("a", Behaviour.UNAVAILABLE) as a,
        StandIn("b") as b,
        StandIn("queue") as queue,
    ):
        fleet = fleet_of({"a": a.url, "b": b.url}, {"default": ["a", "b"]})
        async with running_nginx(nginx_binary, tmp_path, fleet, queue_url=queue.url) as url:
            answer = await post_chat(url)
    assert answer.status_code == 200
    assert answer.json()["served_by"] == "queue"
    assert len(a.requests) == 1
    # A POST that reached a GPU is never re-sent to another GPU; the queue picks one.
    assert b.requests == []
    assert [r.body for r in queue.requests] == [BODY]


async def test_gpu_stalling_after_accepting_answers_504_without_fallback(
    nginx_binary: str, tmp_path: Path
) -> None:
    async with (
        StandIn("a", Behaviour.STALL) as a,
        StandIn("b") as b,
        StandIn("queue") as queue,
    ):
        fleet = fleet_of({"a": a.url, "b": b.url}, {"default": ["a", "b"]})
        async with running_nginx(
            nginx_binary, tmp_path, fleet, queue_url=queue.url, read_timeout_s=1
        ) as url:
            answer = await post_chat(url)
    assert answer.status_code == 504
    assert answer.json()["error"]["code"] == "gpu_timeout"
    assert answer.headers["x-should-retry"] == "false"
    assert answer.headers["X-Routed-To"] == f"route-default 127.0.0.1:{a.port}"
    assert len(a.requests) + len(b.requests) == 1
    assert queue.requests == []


async def test_gpu_dropping_accepted_request_answers_502_without_fallback(
    nginx_binary: str, tmp_path: Path
) -> None:
    async with StandIn("a", Behaviour.DROP) as a, StandIn("queue") as queue:
        fleet = fleet_of({"a": a.url}, {"default": ["a"]})
        async with running_nginx(nginx_binary, tmp_path, fleet, queue_url=queue.url) as url:
            answer = await post_chat(url)
    assert answer.status_code == 502
    assert answer.json()["error"]["code"] == "gpu_error"
    assert len(a.requests) == 1
    assert queue.requests == []


async def test_streamed_answer_reaches_client_before_gpu_finishes(
    nginx_binary: str, tmp_path: Path
) -> None:
    async with StandIn("a", Behaviour.STREAM) as a:
        fleet = fleet_of({"a": a.url}, {"default": ["a"]})
        async with (
            running_nginx(nginx_binary, tmp_path, fleet) as url,
            httpx.AsyncClient(base_url=url, timeout=5) as client,
            client.stream("POST", CHAT, content=BODY) as answer,
        ):
            chunks = answer.aiter_bytes()
            first = await anext(chunks)
            a.release.set()
            rest = b"".join([chunk async for chunk in chunks])
    assert first == b'data: {"part": 1}\n\n'
    assert rest == b"data: [DONE]\n\n"


async def test_requests_past_rate_limit_answer_429(nginx_binary: str, tmp_path: Path) -> None:
    async with StandIn("a") as a:
        fleet = fleet_of({"a": a.url}, {"default": ["a"]})
        async with (
            running_nginx(nginx_binary, tmp_path, fleet, rate_per_s=1, burst=0) as url,
            httpx.AsyncClient(base_url=url, timeout=5) as client,
        ):
            statuses = [(await client.get("/v1/models")).status_code for _ in range(4)]
    assert statuses[0] == 200
    assert 429 in statuses[1:]


async def test_body_over_limit_answers_413_without_reaching_gpu(
    nginx_binary: str, tmp_path: Path
) -> None:
    async with StandIn("a") as a:
        fleet = fleet_of({"a": a.url}, {"default": ["a"]})
        async with running_nginx(nginx_binary, tmp_path, fleet, max_body_size="1k") as url:
            answer = await post_chat_body(url, b"x" * 4096)
    assert answer.status_code == 413
    assert a.requests == []


async def post_chat_body(base_url: str, body: bytes) -> httpx.Response:
    """POST an arbitrary body to the chat endpoint through nginx."""
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        return await client.post(CHAT, content=body)


ADMIN_PATHS = [
    ("GET", "/dlq"),
    ("POST", "/dlq/x/retry"),
    ("GET", "/status"),
    ("GET", "/status/some-job"),
    ("GET", "/consumers"),
    ("GET", "/gpus"),
    ("GET", "/metrics"),
    ("GET", "/dashboard"),
    ("GET", "/docs"),
    ("GET", "/openapi.json"),
    ("POST", "/enqueue"),
    ("GET", "/health"),
    ("GET", "/v1/%2e%2e/dlq"),
    ("GET", "/v1/%2E%2E/status"),
]


async def test_admin_paths_answer_404_without_reaching_anyone(
    nginx_binary: str, tmp_path: Path
) -> None:
    async with StandIn("a") as a, StandIn("queue") as queue:
        fleet = fleet_of({"a": a.url}, {"default": ["a"]})
        async with (
            running_nginx(nginx_binary, tmp_path, fleet, queue_url=queue.url) as url,
            httpx.AsyncClient(base_url=url, timeout=5) as client,
        ):
            answers = [await client.request(method, path) for method, path in ADMIN_PATHS]
    assert [answer.status_code for answer in answers] == [404] * len(ADMIN_PATHS)
    assert answers[0].json()["error"]["code"] == "not_found"
    assert a.requests == queue.requests == []


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/v1/files"), ("GET", "/v1/files/file-x/content"), ("POST", "/v1/batches"),
     ("GET", "/v1/batches/batch_x"), ("POST", "/v1/batches/batch_x/cancel")],
)  # fmt: skip
async def test_files_and_batches_go_to_the_queue_with_the_credential(
    nginx_binary: str, tmp_path: Path, method: str, path: str
) -> None:
    async with StandIn("queue") as queue, StandIn("a") as a:
        fleet = fleet_of({"a": a.url}, {"default": ["a"]})
        async with (
            running_nginx(nginx_binary, tmp_path, fleet, queue_url=queue.url) as url,
            httpx.AsyncClient(base_url=url, timeout=10) as client,
        ):
            answer = await client.request(method, path, content=b"x" * 4096,
                                          headers={"Authorization": "Bearer k"})  # fmt: skip
    assert answer.status_code == 200
    assert a.requests == []
    [forwarded] = queue.requests
    assert (forwarded.method, forwarded.path) == (method, path)
    assert forwarded.headers["authorization"] == "Bearer k"  # it names the batch's owner
