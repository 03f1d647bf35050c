"""The HTTP app in-process over a stub source: query checking and error shapes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from smartqueue_sidecar.app import build_app
from smartqueue_sidecar.readings import GpuReading, ReadError


class StubSource:
    """Two GPUs; GPU 1 fails while `failing` is set."""

    name = "stub"

    def __init__(self) -> None:
        self.devices = ["stub:0", "stub:1"]
        self.failing = False

    def read(self, index: int) -> GpuReading:
        if index == 1 and self.failing:
            raise ReadError("GPU 1 fell off the bus")
        return GpuReading(gpu_util_pct=10.0 * (index + 1), vram_used_mb=100.0,
                          vram_total_mb=1000.0, temp_c=40.0)  # fmt: skip

    def close(self) -> None:
        """Nothing to release."""


@pytest.fixture
def source() -> StubSource:
    return StubSource()


@pytest.fixture
async def client(source: StubSource) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app(source))
    async with httpx.AsyncClient(transport=transport, base_url="http://sidecar") as client:
        yield client


async def test_health_with_gpu_query_reads_that_gpu(client: httpx.AsyncClient) -> None:
    response = await client.get("/health?gpu=1")
    assert response.status_code == 200
    assert response.json()["gpu_util_pct"] == 20.0


@pytest.mark.parametrize("query", ["gpu=-1", "gpu=abc", "gpu=", "gpu=1.0", "gpu=0&gpu=1", "gpu=٣"])
async def test_health_with_malformed_gpu_is_400_json(client: httpx.AsyncClient, query: str) -> None:
    response = await client.get(f"/health?{query}")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_gpu"


async def test_health_with_huge_gpu_index_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/health?gpu=" + "9" * 400)
    assert response.status_code == 404
    assert response.json()["error"]["gpus"] == [0, 1]


async def test_unknown_path_and_wrong_method_answer_json_errors(
    client: httpx.AsyncClient,
) -> None:
    missing = await client.get("/metrics")
    wrong_method = await client.post("/health")
    assert (missing.status_code, wrong_method.status_code) == (404, 405)
    assert missing.json()["error"]["type"] == "invalid_request_error"
    assert wrong_method.json()["error"]["code"] == "http_error"


async def test_gpu_failing_is_503_on_health_and_livez_inline_on_gpus(
    client: httpx.AsyncClient, source: StubSource
) -> None:
    source.failing = True
    health = await client.get("/health?gpu=1")
    livez = await client.get("/livez")
    gpus = (await client.get("/gpus")).json()["gpus"]
    assert health.status_code == 503
    assert health.json()["error"] == {
        "message": "GPU 1 fell off the bus", "type": "gpu_unreadable", "code": "read_failed",
    }  # fmt: skip
    assert livez.status_code == 503
    assert livez.json()["errors"] == {"1": "GPU 1 fell off the bus"}
    assert gpus[0]["gpu_util_pct"] == 10.0
    assert gpus[1]["error"]["code"] == "read_failed"
    assert (await client.get("/health")).status_code == 200
