"""Engine adapters against payloads recorded in each engine's real format (tests/fixtures)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from smartqueue.config import Engine
from smartqueue.engines import EngineView, adapter_for, generic, llamacpp, ollama, vllm

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "engines"
NOW = 1_000.0


def fixture(name: str) -> str:
    """A recorded payload by its path under tests/fixtures/engines."""
    return (FIXTURES / name).read_text(encoding="utf-8")


def test_fixtures_every_payload_names_its_source() -> None:
    payloads = [p for p in FIXTURES.rglob("*") if p.is_file() and p.suffix != ".source"]

    missing = [p.name for p in payloads if not p.with_name(p.name + ".source").is_file()]

    assert payloads
    assert missing == []


@pytest.mark.parametrize(
    ("name", "running", "waiting", "kv_pressure"),
    [
        ("llamacpp/metrics.txt", 2, 3, None),
        ("llamacpp/metrics-kv-ratio.txt", 1, 0, 0.6875),
    ],
)
def test_llamacpp_metrics_reads_processing_deferred_and_old_kv_ratio(
    name: str, running: int, waiting: int, kv_pressure: float | None
) -> None:
    view = llamacpp.read_metrics(fixture(name), observed_at=NOW)

    assert (view.running, view.waiting, view.kv_pressure) == (running, waiting, kv_pressure)
    assert view.capacity is None


def test_llamacpp_slots_counts_processing_slots_and_capacity() -> None:
    view = llamacpp.read_slots(json.loads(fixture("llamacpp/slots.json")), observed_at=NOW)

    assert (view.running, view.capacity) == (2, 4)


def test_llamacpp_read_merges_metrics_and_slots() -> None:
    bodies = {
        llamacpp.METRICS_PATH: fixture("llamacpp/metrics.txt"),
        llamacpp.SLOTS_PATH: fixture("llamacpp/slots.json"),
    }

    view = llamacpp.read(bodies, "any", NOW)

    assert view == EngineView(NOW, running=2, waiting=3, capacity=4)


def test_llamacpp_read_without_metrics_keeps_what_slots_say() -> None:
    view = llamacpp.read({llamacpp.SLOTS_PATH: fixture("llamacpp/slots.json")}, "any", NOW)

    assert view == EngineView(NOW, running=2, capacity=4)


def test_llamacpp_read_unparsable_bodies_say_nothing() -> None:
    bodies = {llamacpp.METRICS_PATH: "llamacpp:requests_processing +Inf\n", "/slots": "{}"}

    assert llamacpp.read(bodies, "any", NOW).says_nothing


@pytest.mark.parametrize(
    ("name", "running", "waiting", "kv_pressure"),
    [
        ("vllm/metrics.txt", 8, 2, 0.9125),
        ("vllm/metrics-v0.txt", 3, 0, 0.25),
        ("vllm/metrics-two-engines.txt", 10, 1, 0.7),
    ],
)
def test_vllm_metrics_reads_running_waiting_and_kv_under_either_name(
    name: str, running: int, waiting: int, kv_pressure: float
) -> None:
    view = vllm.read_metrics(fixture(name), observed_at=NOW)

    assert (view.running, view.waiting, view.kv_pressure) == (running, waiting, kv_pressure)


def test_vllm_metrics_prefers_the_current_kv_name() -> None:
    text = fixture("vllm/metrics-two-engines.txt").replace(
        'kv_cache_usage_perc{engine="1",model_name="Qwen/Qwen3-8B"} 0.7',
        'kv_cache_usage_perc{engine="1",model_name="Qwen/Qwen3-8B"} 0.5',
    )

    assert vllm.read_metrics(text, observed_at=NOW).kv_pressure == 0.5


@pytest.mark.parametrize("text", ["vllm:num_requests_running NaN\n", "not prometheus {{{\n"])
def test_vllm_read_unusable_metrics_says_nothing(text: str) -> None:
    assert vllm.read({vllm.METRICS_PATH: text}, "any", NOW).says_nothing


@pytest.mark.parametrize(
    ("model", "resident", "vram_mb"),
    [
        ("mistral:latest", True, 4899.0),
        ("mistral", True, 4899.0),
        ("llama3.1:8b", False, 0.0),
    ],
)
def test_ollama_ps_says_whether_the_gpus_model_is_loaded_and_its_vram(
    model: str, resident: bool, vram_mb: float
) -> None:
    view = ollama.read_ps(json.loads(fixture("ollama/ps.json")), model=model, observed_at=NOW)

    assert view.model_resident is resident
    assert view.model_vram_mb == pytest.approx(vram_mb, abs=0.5)
    assert (view.running, view.waiting) == (None, None)


def test_ollama_ps_with_nothing_loaded_means_a_cold_start() -> None:
    view = ollama.read({ollama.PS_PATH: fixture("ollama/ps-none-loaded.json")}, "mistral", NOW)

    assert view.model_resident is False


def test_ollama_read_unparsable_ps_says_nothing() -> None:
    assert ollama.read({ollama.PS_PATH: "[]"}, "mistral", NOW).says_nothing


def test_generic_openai_server_says_nothing() -> None:
    assert generic.read({generic.MODELS_PATH: '{"data": []}'}, "m", NOW).says_nothing


@pytest.mark.parametrize(
    ("engine", "health_path", "signal_paths"),
    [
        (Engine.LLAMACPP, "/health", ("/metrics", "/slots")),
        (Engine.VLLM, "/health", ("/metrics",)),
        (Engine.OLLAMA, "/api/ps", ()),
        (Engine.OPENAI, "/v1/models", ()),
    ],
)
def test_adapter_for_each_engine_names_its_endpoints(
    engine: Engine, health_path: str, signal_paths: tuple[str, ...]
) -> None:
    adapter = adapter_for(engine)

    assert (adapter.health_path, adapter.signal_paths) == (health_path, signal_paths)
