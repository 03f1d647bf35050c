"""A real `smartqueue-sim gpu` process, for what needs real sockets: refused connects, hung and
dropped connections, bytes arriving over time, clients that hang up, and the addresses bound.

Everything else (the `openai` SDK's view of bodies and errors) runs in-process, in
test_openai_client.py and test_engine_app.py.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import httpx
import openai
import pytest

from tests.support.sim import SimHandle

pytestmark = pytest.mark.slow

MESSAGES: list[openai.types.chat.ChatCompletionMessageParam] = [
    {"role": "user", "content": "Say something about queues."}
]
WAIT_S = 5.0


@pytest.fixture
def gpu(sim_processes: dict[str, SimHandle]) -> Iterator[SimHandle]:
    """The shared llama.cpp sim process, with faults and stats cleared before and after."""
    shared = sim_processes["shared"]
    shared.reset()
    yield shared
    shared.reset()


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


def test_client_that_gives_up_frees_its_slot(gpu: SimHandle) -> None:
    payload = {"model": "sim-model", "messages": MESSAGES, "max_tokens": 20000}  # ~5 s at 100x
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{gpu.url}/v1/chat/completions", json=payload, timeout=0.3)
    _wait_until(lambda: gpu.stats()["in_flight"] == 0, timeout_s=2.0)
    assert gpu.stats()["cancelled_total"] == 1


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


def test_fault_refuse_at_start_keeps_the_port_closed_until_switched_off(
    sim_processes: dict[str, SimHandle],
) -> None:
    gpu = sim_processes["refusing"]  # started with --fault=refuse
    with pytest.raises(ConnectionRefusedError):
        _connect(gpu.url)
    assert gpu.faults()["mode"] == "refuse"
    gpu.set_faults("none")
    assert httpx.get(f"{gpu.url}/health").status_code == 200


def test_host_name_binds_every_loopback_address_it_resolves_to(
    sim_processes: dict[str, SimHandle],
) -> None:
    gpu = sim_processes["localhost"]  # started with --host=localhost
    addresses = {info[4][0] for info in socket.getaddrinfo("localhost", None)}
    port = urlsplit(gpu.url).port
    for address in addresses:
        family = socket.AF_INET6 if ":" in str(address) else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(1)
            sock.connect((str(address), port or 0))
    assert urlsplit(gpu.url).hostname == "localhost"
