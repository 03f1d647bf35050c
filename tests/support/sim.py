"""Simulated GPUs for tests: real `smartqueue-sim gpu` / `fleet` processes, or in-process apps.

    with running_sim(engine="vllm", slots=2, speed=100) as gpu:
        httpx.post(f"{gpu.url}/v1/chat/completions", json=...)
        gpu.set_faults("rate_limit", retry_after_s=2)
        assert gpu.stats()["max_in_flight"] <= 2

The process picks its own ports (`--port 0`) and reports them through `--ready-file`, so
parallel tests never race for a port. Control calls are synchronous (short, local); from async
tests they block the loop for a millisecond, which is fine.

When real sockets are not the point, `build_sim_apps` builds the same sim in-process (its engine
app and its sidecar app, for `httpx.ASGITransport`): no process, no port, no start-up wait.

    apps = build_sim_apps(engine="vllm", slots=2)
    async with apps.engine_client() as gpu, apps.sidecar_client() as sidecar:
        await gpu.post("/v1/chat/completions", json=...)

For service code that holds one client for the whole fleet, `apps.mounts(gpu.url,
gpu.sidecar_url)` routes a fleet file's URLs to the in-process apps.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict, Unpack, cast
from urllib.parse import urlsplit

import httpx
from fastapi import FastAPI

from smartqueue_sim.faults import FaultMode, FaultSettings
from smartqueue_sim.gpu import SimGpu, SimSettings
from smartqueue_sim.latency import builtin_profile
from smartqueue_sim.server import build_engine_app
from smartqueue_sim.sidecar import build_sidecar_app

# The sibling package's console script, installed beside this Python.
SIM_COMMAND = str(Path(sys.executable).with_name("smartqueue-sim"))
STARTUP_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0
CONTROL_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class SimHandle:
    """One running simulated GPU: its URLs and its control API."""

    name: str
    url: str
    sidecar_url: str
    process: subprocess.Popen[bytes]

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        url = f"{self.sidecar_url}{path}"
        response = httpx.request(method, url, json=body, timeout=CONTROL_TIMEOUT_S)
        response.raise_for_status()
        return cast(dict[str, Any], response.json())

    def set_faults(self, mode: str = "none", **params: Any) -> dict[str, Any]:
        """Switch the active fault (`none` clears it); returns the settings now active."""
        return self._call("POST", "/sim/faults", {"mode": mode, **params})

    def faults(self) -> dict[str, Any]:
        """The active fault settings."""
        return self._call("GET", "/sim/faults")

    def stats(self) -> dict[str, Any]:
        """Requests per job id, totals, and current and highest concurrency."""
        return self._call("GET", "/sim/stats")

    def reset_stats(self) -> dict[str, Any]:
        """Forget totals and high-water marks."""
        return self._call("POST", "/sim/stats/reset")

    def gpu_health(self) -> dict[str, Any]:
        """The sidecar's GPU `/health` JSON."""
        return self._call("GET", "/health")

    def reset(self) -> None:
        """Clear faults and stats, e.g. between tests sharing one process."""
        self.set_faults("none")
        self.reset_stats()


class SimOptions(TypedDict, total=False):
    """Options of `smartqueue-sim gpu` a test may set (the rest keep the defaults below)."""

    engine: str
    model: str
    slots: int
    speed: float
    seed: int
    profile: str
    fault: str
    loading_delay_s: float
    api_key: str
    extra_args: Sequence[str]


SIM_DEFAULTS: SimOptions = {
    "engine": "llamacpp", "model": "sim-model", "slots": 2, "speed": 100.0, "seed": 0,
    "profile": "default", "fault": "none", "loading_delay_s": 0.0, "extra_args": (),
}  # fmt: skip


def sim_args(**options: Unpack[SimOptions]) -> list[str]:
    """Command-line arguments of `smartqueue-sim gpu` after the sub-command name."""
    o: SimOptions = {**SIM_DEFAULTS, **options}
    return [
        f"--engine={o['engine']}", f"--model={o['model']}", f"--slots={o['slots']}",
        f"--speed={o['speed']}", f"--seed={o['seed']}", f"--profile={o['profile']}",
        f"--fault={o['fault']}", f"--loading-delay-s={o['loading_delay_s']}",
        *([f"--api-key={o['api_key']}"] if "api_key" in o else []), *o["extra_args"],
    ]  # fmt: skip


class SimSpec(SimOptions, total=False):
    """One sim of `running_sims`: its options, and the host it binds."""

    host: str


def gpu_command(*, host: str = "127.0.0.1", **options: Unpack[SimOptions]) -> list[str]:
    """`smartqueue-sim gpu` on free ports (without the ready file)."""
    return ["gpu", f"--host={host}", "--port=0", "--sidecar-port=0", *sim_args(**options)]


@contextmanager
def running_sim(
    *,
    host: str = "127.0.0.1",
    startup_timeout_s: float = STARTUP_TIMEOUT_S,
    **options: Unpack[SimOptions],
) -> Iterator[SimHandle]:
    """Run `smartqueue-sim gpu` until the block ends; yields its handle."""
    with _spawned(gpu_command(host=host, **options)) as started:
        yield started.wait_ready(startup_timeout_s)[0]


@contextmanager
def running_sims(
    startup_timeout_s: float = STARTUP_TIMEOUT_S, **specs: SimSpec
) -> Iterator[dict[str, SimHandle]]:
    """Several `running_sim`s, spawned together so their start-ups overlap; handles by name."""
    with ExitStack() as stack:
        started = {
            name: stack.enter_context(_spawned(gpu_command(**spec))) for name, spec in specs.items()
        }
        # Runs first on the way out: every sim gets SIGTERM at once, so their stops overlap too.
        stack.callback(_terminate_all, [sim.process for sim in started.values()])
        yield {name: sim.wait_ready(startup_timeout_s)[0] for name, sim in started.items()}


@contextmanager
def running_sim_fleet(
    fleet: Path,
    *,
    speed: float = 100.0,
    extra_args: Sequence[str] = (),
    startup_timeout_s: float = STARTUP_TIMEOUT_S,
) -> Iterator[dict[str, SimHandle]]:
    """Run `smartqueue-sim fleet` on a fleet file; yields handles by GPU name."""
    command = ["fleet", f"--fleet={fleet}", f"--speed={speed}", *extra_args]
    with _spawned(command) as started:
        yield {handle.name: handle for handle in started.wait_ready(startup_timeout_s)}


@dataclass(frozen=True)
class _StartedSim:
    """A sim process that was spawned and may not listen yet."""

    process: subprocess.Popen[bytes]
    ready_file: Path
    log_file: Path

    def wait_ready(self, timeout_s: float) -> list[SimHandle]:
        """Block until its ready file appears; a handle per simulated GPU it serves."""
        document = _wait_ready(self.process, self.ready_file, self.log_file, timeout_s)
        return [_handle(entry, self.process) for entry in document["sims"]]


@contextmanager
def _spawned(command: list[str]) -> Iterator[_StartedSim]:
    with tempfile.TemporaryDirectory(prefix="sq-sim-") as workdir:
        ready_file, log_file = Path(workdir) / "ready.json", Path(workdir) / "sim.log"
        with log_file.open("wb") as log:
            process = subprocess.Popen(
                [SIM_COMMAND, *command, f"--ready-file={ready_file}"],
                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
            try:
                yield _StartedSim(process, ready_file, log_file)
            finally:
                _stop(process)


def _handle(entry: dict[str, str], process: subprocess.Popen[bytes]) -> SimHandle:
    return SimHandle(
        name=entry["name"], url=entry["url"], sidecar_url=entry["sidecar_url"], process=process
    )


def _wait_ready(
    process: subprocess.Popen[bytes], ready_file: Path, log_file: Path, timeout_s: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready_file.exists():
            document: dict[str, Any] = json.loads(ready_file.read_text(encoding="utf-8"))
            return document
        if process.poll() is not None:
            break
        time.sleep(0.02)
    log = log_file.read_text(encoding="utf-8", errors="replace")[-2000:]
    raise RuntimeError(f"sim did not become ready (exit code {process.poll()}):\n{log}")


def _terminate_all(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass(frozen=True)
class SimApps:
    """One in-process simulated GPU: its state and the two ASGI apps its ports would serve.

    No listener is attached, so the `refuse` fault does not close anything here.
    """

    sim: SimGpu
    engine: FastAPI
    sidecar: FastAPI

    def engine_client(self, base_url: str = "http://sim-gpu", **kwargs: Any) -> httpx.AsyncClient:
        """An httpx client whose requests go to the engine app (OpenAI and engine paths)."""
        return _asgi_client(self.engine, base_url, **kwargs)

    def sidecar_client(
        self, base_url: str = "http://sim-sidecar", **kwargs: Any
    ) -> httpx.AsyncClient:
        """An httpx client whose requests go to the sidecar app (GPU /health and /sim/...)."""
        return _asgi_client(self.sidecar, base_url, **kwargs)

    def mounts(self, url: str, sidecar_url: str) -> dict[str, httpx.AsyncBaseTransport]:
        """httpx `mounts` sending `url` to the engine app and `sidecar_url` to the sidecar app.

        Merge several sims' mounts into one client to stand in for a fleet:
        `httpx.AsyncClient(mounts={**a.mounts(gpu_a.url, gpu_a.sidecar_url), **b.mounts(...)})`.
        """
        return {
            _mount_key(url): httpx.ASGITransport(app=self.engine),
            _mount_key(sidecar_url): httpx.ASGITransport(app=self.sidecar),
        }


def sim_settings(**options: Unpack[SimOptions]) -> SimSettings:
    """The settings `smartqueue-sim gpu` would run with these options (not `extra_args`)."""
    o: SimOptions = {**SIM_DEFAULTS, **options}
    if o["extra_args"]:
        raise ValueError("extra_args are command-line only; give SimSettings fields instead")
    return SimSettings(
        engine=o["engine"], model=o["model"], slots=o["slots"], speed=o["speed"], seed=o["seed"],
        profile_name=o["profile"], profile=builtin_profile(o["profile"]),
        loading_delay_s=o["loading_delay_s"], faults=FaultSettings(mode=FaultMode(o["fault"])),
        api_key=o.get("api_key"),
    )  # fmt: skip


def build_sim_apps(
    settings: SimSettings | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
    **options: Unpack[SimOptions],
) -> SimApps:
    """A simulated GPU in-process, from `settings` or from `running_sim`'s options."""
    if settings is not None and options:
        raise TypeError("give either settings or options, not both")
    sim = SimGpu(settings or sim_settings(**options), clock=clock)
    return SimApps(sim=sim, engine=build_engine_app(sim), sidecar=build_sidecar_app(sim))


def _mount_key(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _asgi_client(app: FastAPI, base_url: str, **kwargs: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url=base_url, **kwargs)


class _RefusingTransport(httpx.AsyncBaseTransport):
    """The engine app in-process; while the sim's fault is `refuse`, a refused connection."""

    def __init__(self, apps: SimApps) -> None:
        self.apps = apps
        self.inner = httpx.ASGITransport(app=apps.engine)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Refuse as a closed port would, or let the engine app answer."""
        if self.apps.sim.faults.mode is FaultMode.REFUSE:
            raise httpx.ConnectError("connection refused (simulated)", request=request)
        return await self.inner.handle_async_request(request)


@dataclass(frozen=True)
class InProcessSim:
    """A simulated GPU in the test's own process, with `SimHandle`'s control calls.

    Its URLs resolve only through `transports()` (httpx mounts), so a service built with those
    mounts reaches it without a socket; `refuse` raises a connection error as a closed port would.
    """

    name: str
    url: str
    sidecar_url: str
    apps: SimApps

    def transports(self) -> dict[str, httpx.AsyncBaseTransport]:
        """httpx mounts for both of its URLs."""
        return {
            _mount_key(self.url): _RefusingTransport(self.apps),
            _mount_key(self.sidecar_url): httpx.ASGITransport(app=self.apps.sidecar),
        }

    def set_faults(self, mode: str = "none", **params: Any) -> dict[str, Any]:
        """Switch the active fault (`none` clears it); returns the settings now active."""
        self.apps.sim.switch_faults(FaultSettings.model_validate({"mode": mode, **params}))
        return self.faults()

    def faults(self) -> dict[str, Any]:
        """The active fault settings."""
        return self.apps.sim.faults.model_dump(mode="json")

    def stats(self) -> dict[str, Any]:
        """Requests per job id, totals, and current and highest concurrency."""
        return self.apps.sim.counters.stats().model_dump(mode="json")


def in_process_sim(name: str, **options: Unpack[SimOptions]) -> InProcessSim:
    """A simulated GPU in-process, on URLs unique to it."""
    host = f"{name}-{uuid.uuid4().hex[:8]}.sim.test"
    return InProcessSim(name, f"http://{host}", f"http://sidecar.{host}",
                        build_sim_apps(**options))  # fmt: skip
