"""The prober over mocked engines and sidecars (respx): keys, refusals, timeouts, `?gpu=N`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import respx

from smartqueue.api.routes.queue import health_view
from smartqueue.api.services import Services
from smartqueue.config import FleetConfig, parse_fleet
from smartqueue.fleet import FleetProber
from smartqueue.metrics import Metrics

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "engines"
ENGINE = "http://10.0.0.5:8080"
SIDECAR = "http://10.0.0.5:8090"
SIDECAR_HEALTH = {"gpu_util_pct": 40.0, "vram_used_mb": 8000, "vram_total_mb": 24000, "temp_c": 60}


def fleet(engine: str = "llamacpp", **extra: Any) -> FleetConfig:
    """One GPU, `g`, of the given engine."""
    gpu = {"name": "g", "url": ENGINE, "sidecar_url": SIDECAR, "engine": engine,
           "model": "mistral", "slots": 4, "vram_total_mb": 24000, **extra}  # fmt: skip
    return parse_fleet({"gpus": [gpu], "routes": {"default": ["g"]}})


def fixture(name: str) -> str:
    """A recorded engine payload."""
    return (FIXTURES / name).read_text(encoding="utf-8")


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    """Every request mocked, every mocked route called."""
    with respx.mock(assert_all_mocked=True, assert_all_called=True) as router:
        yield router


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """The prober's client."""
    async with httpx.AsyncClient() as client:
        yield client


def prober(config: FleetConfig, http: httpx.AsyncClient, **options: Any) -> FleetProber:
    """A prober with a short timeout."""
    return FleetProber(config, http, interval_s=1.0, timeout_s=0.5, **options)


def mock_sidecar(mock: respx.MockRouter, gpu_index: int = 0) -> respx.Route:
    """The sidecar answering for GPU `gpu_index`."""
    return mock.get(f"{SIDECAR}/health", params={"gpu": str(gpu_index)}).respond(
        json=SIDECAR_HEALTH
    )


def mock_llamacpp(mock: respx.MockRouter, **headers: str) -> list[respx.Route]:
    """A healthy llama.cpp with its recorded /metrics and /slots."""
    metrics, slots = fixture("llamacpp/metrics.txt"), fixture("llamacpp/slots.json")
    return [
        mock.get(f"{ENGINE}/health", headers=headers).respond(json={"status": "ok"}),
        mock.get(f"{ENGINE}/metrics", headers=headers).respond(text=metrics),
        mock.get(f"{ENGINE}/slots", headers=headers).respond(text=slots),
    ]


async def test_prober_llamacpp_reads_metrics_slots_and_the_sidecar_gpu_it_is_told(
    mock: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    sidecar = mock_sidecar(mock, gpu_index=2)
    mock_llamacpp(mock)

    snapshot = await prober(fleet(sidecar_gpu=2), http).probe(fleet(sidecar_gpu=2).gpus[0])

    assert sidecar.calls.last.request.url.params["gpu"] == "2"
    assert snapshot.reachable
    assert not snapshot.unauthorised
    assert snapshot.sidecar is not None
    assert snapshot.sidecar.gpu_util_pct == 40.0
    assert snapshot.engine is not None
    assert (snapshot.engine.running, snapshot.engine.waiting, snapshot.engine.capacity) == (2, 3, 4)


async def test_prober_keyed_gpu_sends_its_key_on_every_engine_probe_and_never_to_the_sidecar(
    mock: respx.MockRouter, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GPU_G_KEY", "s3cret")
    sidecar = mock_sidecar(mock)
    engine = mock_llamacpp(mock, authorization="Bearer s3cret")
    config = fleet(api_key_env="GPU_G_KEY")

    snapshot = await prober(config, http).probe(config.gpus[0])

    assert all(route.call_count == 1 for route in engine)
    assert "authorization" not in sidecar.calls.last.request.headers
    assert snapshot.engine is not None
    assert snapshot.engine.running == 2


async def test_prober_unkeyed_gpu_sends_no_authorization(
    mock: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    mock_sidecar(mock)
    engine = mock_llamacpp(mock)

    await prober(fleet(), http).probe(fleet().gpus[0])

    assert all("authorization" not in route.calls.last.request.headers for route in engine)


@pytest.mark.parametrize("status", [401, 403])
async def test_prober_health_refused_is_unauthorised_not_down(
    mock: respx.MockRouter, http: httpx.AsyncClient, status: int
) -> None:
    mock_sidecar(mock)
    mock.get(f"{ENGINE}/health").respond(status, json={"error": "invalid api key"})

    snapshot = await prober(fleet("vllm"), http).probe(fleet("vllm").gpus[0])

    assert snapshot.unauthorised
    assert snapshot.reachable
    assert snapshot.engine is None
    assert snapshot.error == f"probe unauthorised: /health answered {status}"


async def test_prober_metrics_refused_while_health_answers_is_unauthorised(
    mock: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    mock_sidecar(mock)
    mock.get(f"{ENGINE}/health").respond(json={"status": "ok"})
    mock.get(f"{ENGINE}/metrics").respond(401)
    mock.get(f"{ENGINE}/slots").respond(401)

    snapshot = await prober(fleet(), http).probe(fleet().gpus[0])

    assert snapshot.unauthorised
    assert snapshot.reachable
    assert snapshot.error is not None
    assert "/metrics answered 401" in snapshot.error


@pytest.mark.parametrize(
    "failure", [httpx.ConnectTimeout("slow"), httpx.ReadTimeout("slow"), httpx.ConnectError("no")]
)
async def test_prober_timeout_or_refused_connection_is_unreachable(
    mock: respx.MockRouter, http: httpx.AsyncClient, failure: Exception
) -> None:
    mock_sidecar(mock)
    mock.get(f"{ENGINE}/health").mock(side_effect=failure)

    snapshot = await prober(fleet(), http).probe(fleet().gpus[0])

    assert not snapshot.reachable
    assert not snapshot.unauthorised
    assert snapshot.error is not None
    assert type(failure).__name__ in snapshot.error


async def test_prober_engine_slower_than_the_probe_timeout_is_unreachable(
    http: httpx.AsyncClient,
) -> None:
    asked = asyncio.Event()

    async def hang(request: httpx.Request) -> httpx.Response:
        asked.set()
        await asyncio.sleep(5)
        return httpx.Response(200)

    # respx records a call only once its side effect returns; `asked` stands in for it here
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as mock:
        sidecar = mock_sidecar(mock)
        mock.get(f"{ENGINE}/health").mock(side_effect=hang)

        snapshot = await prober(fleet(), http).probe(fleet().gpus[0])

    assert asked.is_set()
    assert sidecar.called
    assert not snapshot.reachable
    assert snapshot.error is not None
    assert snapshot.error.startswith("TimeoutError")


@pytest.mark.parametrize(
    ("payload", "resident"), [("ollama/ps.json", True), ("ollama/ps-none-loaded.json", False)]
)
async def test_prober_ollama_reads_whether_the_model_is_resident(
    mock: respx.MockRouter, http: httpx.AsyncClient, payload: str, resident: bool
) -> None:
    mock_sidecar(mock)
    mock.get(f"{ENGINE}/api/ps").respond(text=fixture(payload))

    snapshot = await prober(fleet("ollama"), http).probe(fleet("ollama").gpus[0])

    assert snapshot.engine is not None
    assert snapshot.engine.model_resident is resident


async def test_prober_flags_engine_numbers_frozen_while_our_in_flight_moves(
    mock: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    counts = iter([0, 2, 3, 1, 0])

    async def in_flight(names: list[str]) -> dict[str, int]:
        return dict.fromkeys(names, next(counts))

    mock_sidecar(mock)
    mock.get(f"{ENGINE}/health").respond(json={"status": "ok"})
    mock.get(f"{ENGINE}/metrics").respond(text=fixture("vllm/metrics.txt"))
    watcher = prober(fleet("vllm"), http, in_flight=in_flight)

    flags = []
    for _ in range(5):
        await watcher.probe_all()
        flags.append(watcher.snapshots["g"].frozen)

    assert flags == [False, False, False, True, True]


async def test_health_view_shows_unauthorised_and_each_signal_with_age_and_share(
    mock: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    mock_sidecar(mock)
    mock_llamacpp(mock)
    config = fleet()
    watcher = prober(config, http)
    await watcher.probe_all()
    services = Services(cast(Any, None), config, cast(Any, None), Metrics(), cast(Any, None),
                        http, watcher, cast(Any, None), None, cast(Any, None))  # fmt: skip
    now = watcher.snapshots["g"].observed_at + 2.0

    view = health_view(services, "g", in_use=1, now=now)

    assert view is not None
    assert (view["state"], view["probe_unauthorised"], view["engine_frozen"]) == (
        "up",
        False,
        False,
    )
    running = view["signals"]["running"]
    assert (running["value"], running["trusted"], running["contributed"]) == (2, True, 25.0)
    assert running["age_s"] == pytest.approx(2.0, abs=0.1)
    assert view["signals"]["waiting"]["contributed"] == 75.0
    assert view["signals"]["sidecar"]["contributed"] == pytest.approx(
        0.6 * 40 + 0.3 * 33.3, abs=0.1
    )
    assert view["load_score"] == pytest.approx(sum(
        signal["contributed"] or 0 for signal in view["signals"].values()), abs=0.2)  # fmt: skip


async def test_health_view_unauthorised_probe_reads_probe_unauthorised(
    mock: respx.MockRouter, http: httpx.AsyncClient
) -> None:
    mock_sidecar(mock)
    mock.get(f"{ENGINE}/health").respond(401)
    config = fleet("vllm")
    watcher = prober(config, http)
    await watcher.probe_all()
    services = Services(cast(Any, None), config, cast(Any, None), Metrics(), cast(Any, None),
                        http, watcher, cast(Any, None), None, cast(Any, None))  # fmt: skip

    view = health_view(services, "g", in_use=0, now=watcher.snapshots["g"].observed_at)

    assert view is not None
    assert (view["state"], view["down"], view["probe_unauthorised"]) == (
        "probe unauthorised", False, True)  # fmt: skip
