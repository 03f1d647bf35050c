"""A real `smartqueue sim` process: the `openai` client against it, and every fault mode."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx
import openai
import pytest

from tests.support.sim import SimHandle, running_sim

pytestmark = pytest.mark.slow

MESSAGES: list[openai.types.chat.ChatCompletionMessageParam] = [
    {"role": "user", "content": "Say something about queues."}
]
WAIT_S = 5.0


@pytest.fixture(scope="module")
def shared_sim() -> Iterator[SimHandle]:
    """One llama.cpp sim process for the module (2 slots, 100x speed)."""
    with running_sim(engine="llamacpp", model="sim-model", slots=2, speed=100.0, seed=3) as gpu:
        yield gpu


@pytest.fixture
def gpu(shared_sim: SimHandle) -> Iterator[SimHandle]:
    """The shared sim with faults and stats cleared before and after the test."""
    shared_sim.reset()
    yield shared_sim
    shared_sim.reset()


@pytest.fixture
def client(gpu: SimHandle) -> Iterator[openai.OpenAI]:
    """The real OpenAI SDK pointed at the sim, without its own retries."""
    with openai.OpenAI(base_url=f"{gpu.url}/v1", api_key="sim", max_retries=0, timeout=5) as sdk:
        yield sdk


def _wait_until(condition: Callable[[], bool], *, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_openai_chat_non_streamed_returns_content_and_usage(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(model="sim-model", messages=MESSAGES, max_tokens=6)
    assert answer.choices[0].message.content
    assert answer.choices[0].finish_reason == "length"
    assert answer.usage is not None
    assert answer.usage.completion_tokens == 6


def test_openai_chat_streamed_matches_the_non_streamed_text(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model="sim-model", messages=MESSAGES, max_tokens=9)
    stream = client.chat.completions.create(
        model="sim-model",
        messages=MESSAGES,
        max_tokens=9,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 9


def test_openai_completions_streamed_and_not_agree(client: openai.OpenAI) -> None:
    whole = client.completions.create(model="sim-model", prompt="Once upon a time", max_tokens=5)
    stream = client.completions.create(
        model="sim-model", prompt="Once upon a time", max_tokens=5, stream=True
    )
    text = "".join(chunk.choices[0].text for chunk in stream)
    assert whole.choices[0].text == text
    assert len(text.split()) == 5


async def test_async_openai_client_streams_from_the_sim(gpu: SimHandle) -> None:
    async with openai.AsyncOpenAI(base_url=f"{gpu.url}/v1", api_key="s", max_retries=0) as sdk:
        stream = await sdk.chat.completions.create(
            model="sim-model", messages=MESSAGES, max_tokens=4, stream=True
        )
        texts = [chunk.choices[0].delta.content async for chunk in stream if chunk.choices]
    assert len([text for text in texts if text]) == 4


def test_openai_models_lists_the_served_model(client: openai.OpenAI) -> None:
    assert [model.id for model in client.models.list()] == ["sim-model"]


def test_concurrent_requests_never_generate_past_the_slots(gpu: SimHandle) -> None:
    payload = {"model": "sim-model", "messages": MESSAGES, "max_tokens": 200}  # ~50 ms each

    def call(job: int) -> int:
        headers = {"X-Request-Id": f"j{job}"}
        response = httpx.post(f"{gpu.url}/v1/chat/completions", json=payload, headers=headers)
        return response.status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(call, range(8)))
    stats = gpu.stats()
    assert codes == [200] * 8
    assert stats["max_processing"] == 2
    assert stats["max_in_flight"] > 2  # the rest waited inside the server
    assert stats["requests_by_job"] == {f"j{n}": 1 for n in range(8)}


def test_client_that_gives_up_frees_its_slot(gpu: SimHandle) -> None:
    payload = {"model": "sim-model", "messages": MESSAGES, "max_tokens": 20000}  # ~5 s at 100x
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{gpu.url}/v1/chat/completions", json=payload, timeout=0.3)
    _wait_until(lambda: gpu.stats()["in_flight"] == 0, timeout_s=2.0)
    assert gpu.stats()["cancelled_total"] == 1


def test_fault_error_answers_500_in_openai_shape(gpu: SimHandle, client: openai.OpenAI) -> None:
    gpu.set_faults("error")
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="sim-model", messages=MESSAGES)
    assert caught.value.status_code == 500
    assert gpu.stats()["faults_injected_total"] == 1


def test_fault_rate_limit_answers_429_with_retry_after(
    gpu: SimHandle, client: openai.OpenAI
) -> None:
    gpu.set_faults("rate_limit", retry_after_s=3)
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="sim-model", messages=MESSAGES)
    assert caught.value.response.headers["retry-after"] == "3"


def test_fault_unavailable_answers_503_with_retry_after(gpu: SimHandle) -> None:
    gpu.set_faults("unavailable", retry_after_s=2)
    response = httpx.post(
        f"{gpu.url}/v1/chat/completions", json={"model": "m", "messages": MESSAGES}
    )
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    assert response.json()["error"]["type"] == "unavailable_error"


def _connect(url: str) -> None:
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname or "", parts.port or 0), timeout=1):
        pass


def test_fault_refuse_closes_the_port_and_reopens_it(gpu: SimHandle, client: openai.OpenAI) -> None:
    with httpx.Client(base_url=gpu.url) as pooled:
        assert pooled.get("/health").status_code == 200  # leaves a keep-alive connection
        gpu.set_faults("refuse")
        with pytest.raises(ConnectionRefusedError):
            _connect(gpu.url)
        with pytest.raises(httpx.TransportError):
            pooled.get("/health")
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="sim-model", messages=MESSAGES)
    assert gpu.stats()["requests_total"] == 0  # the control port still answers
    gpu.set_faults("none")
    assert client.chat.completions.create(model="sim-model", messages=MESSAGES, max_tokens=1)


def test_fault_hang_accepts_and_never_answers(gpu: SimHandle) -> None:
    gpu.set_faults("hang")
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{gpu.url}/v1/chat/completions",
            json={"model": "m", "messages": MESSAGES},
            timeout=httpx.Timeout(2.0, read=0.5),
        )
    assert gpu.stats()["requests_total"] == 1


def test_fault_drip_sends_headers_then_one_byte_per_interval(gpu: SimHandle) -> None:
    gpu.set_faults("drip", drip_interval_s=5.0)  # 50 ms at 100x
    payload = {"model": "m", "messages": MESSAGES, "max_tokens": 5}
    with httpx.stream("POST", f"{gpu.url}/v1/chat/completions", json=payload) as response:
        started = time.monotonic()
        chunks = []
        for chunk in response.iter_raw():
            chunks.append(chunk)
            if len(chunks) == 5:
                break
        elapsed_s = time.monotonic() - started
        announced = int(response.headers["content-length"])
    assert response.status_code == 200
    assert [len(chunk) for chunk in chunks] == [1] * 5
    assert elapsed_s >= 4 * 0.05 * 0.9
    assert announced > 100  # the whole answer would take seconds more


def test_fault_invalid_json_breaks_the_client_parser(gpu: SimHandle, client: openai.OpenAI) -> None:
    gpu.set_faults("invalid_json")
    with pytest.raises(ValueError, match="Expecting value"):
        client.chat.completions.create(model="sim-model", messages=MESSAGES)


def test_fault_invalid_json_in_a_stream_breaks_the_client_parser(
    gpu: SimHandle, client: openai.OpenAI
) -> None:
    gpu.set_faults("invalid_json")
    stream = client.chat.completions.create(model="sim-model", messages=MESSAGES, stream=True)
    with pytest.raises(ValueError, match="Expecting value"):
        list(stream)


def _read_until_dropped(response: httpx.Response) -> bytes:
    """The body bytes that arrived before the server dropped the connection."""
    received = bytearray()
    try:
        for chunk in response.iter_raw():
            received.extend(chunk)
    except httpx.RemoteProtocolError:
        return bytes(received)
    raise AssertionError(f"the body ended normally: {bytes(received)!r}")


@pytest.mark.parametrize("stream", [False, True])
def test_fault_close_mid_stream_drops_the_connection_halfway(gpu: SimHandle, stream: bool) -> None:
    gpu.set_faults("close_mid_stream")
    payload = {"model": "m", "messages": MESSAGES, "max_tokens": 10, "stream": stream}
    with httpx.stream("POST", f"{gpu.url}/v1/chat/completions", json=payload) as response:
        received = _read_until_dropped(response)
    assert response.status_code == 200
    assert received  # part of the body arrived before the connection dropped
    assert b"[DONE]" not in received


def test_fault_slow_start_delays_the_first_byte(gpu: SimHandle, client: openai.OpenAI) -> None:
    started = time.monotonic()
    client.chat.completions.create(model="sim-model", messages=MESSAGES, max_tokens=1)
    normal_s = time.monotonic() - started
    gpu.set_faults("slow_start", slow_start_s=40.0)  # 0.4 s at 100x
    started = time.monotonic()
    client.chat.completions.create(model="sim-model", messages=MESSAGES, max_tokens=1)
    slow_s = time.monotonic() - started
    assert normal_s < 0.2
    assert slow_s >= 0.4


def test_fault_refuse_at_start_keeps_the_port_closed_until_switched_off() -> None:
    with running_sim(fault="refuse") as gpu:
        with pytest.raises(ConnectionRefusedError):
            _connect(gpu.url)
        assert gpu.faults()["mode"] == "refuse"
        gpu.set_faults("none")
        assert httpx.get(f"{gpu.url}/health").status_code == 200


def test_health_is_503_during_the_loading_delay_then_200() -> None:
    with running_sim(engine="vllm", loading_delay_s=100.0, speed=100.0) as gpu:  # 1 s
        first = httpx.get(f"{gpu.url}/health")
        models = httpx.get(f"{gpu.url}/v1/models")
        _wait_until(lambda: httpx.get(f"{gpu.url}/health").status_code == 200)
    assert first.status_code == 503
    assert models.status_code == 200  # like vLLM, /v1/models answers while loading


def test_host_name_binds_every_loopback_address_it_resolves_to() -> None:
    addresses = {info[4][0] for info in socket.getaddrinfo("localhost", None)}
    with running_sim(host="localhost") as gpu:
        port = urlsplit(gpu.url).port
        for address in addresses:
            family = socket.AF_INET6 if ":" in str(address) else socket.AF_INET
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.settimeout(1)
                sock.connect((str(address), port or 0))
    assert urlsplit(gpu.url).hostname == "localhost"
