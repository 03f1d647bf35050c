"""Start and stop the processes a benchmark measures: redis-server, sims, smartqueue, bare app.

Every process listens on a free loopback port, logs into the run's work dir and is stopped when
the `Processes` context ends (SIGTERM, then SIGKILL after a grace period).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import yaml

LOOPBACK = "127.0.0.1"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
SERVICE_CPU = "0"
LOAD_CPU = "1"
NO_BACKPRESSURE = {
    "SMARTQUEUE_QUEUE_WARN_DEPTH": "100000000",
    "SMARTQUEUE_QUEUE_OVERLOAD_DEPTH": "100000000",
    "SMARTQUEUE_QUEUE_OPEN_DEPTH": "100000000",
    "SMARTQUEUE_CEILING_LOW": "100000000",
    "SMARTQUEUE_CEILING_NORMAL": "100000000",
    "SMARTQUEUE_CEILING_HIGH": "100000000",
    "SMARTQUEUE_QUEUE_MAX_DEPTH": "100000000",
}


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port


def pinned(cpu: str, args: Sequence[str]) -> list[str]:
    """`args` run under `taskset -c cpu` when the machine has more than one core."""
    if (os.cpu_count() or 1) < 2 or shutil.which("taskset") is None:
        return list(args)
    return ["taskset", "-c", cpu, *args]


@dataclass(frozen=True)
class Sim:
    """One simulated GPU: its OpenAI URL and its sidecar (control) URL."""

    name: str
    url: str
    sidecar_url: str


class Processes:
    """Owns the child processes of one benchmark; stops them all on exit, last started first."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.children: list[subprocess.Popen[bytes]] = []
        self.named: dict[str, subprocess.Popen[bytes]] = {}

    def __enter__(self) -> Processes:
        self.workdir.mkdir(parents=True, exist_ok=True)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for child in reversed(self.children):
            stop(child)

    def spawn(
        self, name: str, args: Sequence[str], *, env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """Start `args` with its output in `<workdir>/<name>.log`."""
        log = (self.workdir / f"{name}.log").open("wb")
        child = subprocess.Popen(
            list(args),
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        log.close()
        self.children.append(child)
        self.named[name] = child
        return child

    def rss_bytes(self, name: str) -> int:
        """Resident memory of a child (taskset execs the command, so the pid is the program's)."""
        status = Path(f"/proc/{self.named[name].pid}/status").read_text(encoding="utf-8")
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"{name}: no VmRSS")

    def log_tail(self, name: str) -> str:
        """The end of a child's log, for error messages."""
        path = self.workdir / f"{name}.log"
        return path.read_text(encoding="utf-8", errors="replace")[-2000:] if path.exists() else ""

    def redis(self, name: str = "redis") -> str:
        """redis-server without persistence in a temp dir; its URL."""
        port, data = free_port(), self.workdir / name
        data.mkdir(exist_ok=True)
        args = [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            LOOPBACK,
            "--dir",
            str(data),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
        ]
        child = self.spawn(name, pinned(LOAD_CPU, args))
        wait_until(lambda: accepts(port), child, what=name, log=lambda: self.log_tail(name))
        return f"redis://{LOOPBACK}:{port}/0"

    def sim(self, name: str, *, slots: int, speed: float, extra: Sequence[str] = ()) -> Sim:
        """`smartqueue sim` (llama.cpp engine) on free ports."""
        ready = self.workdir / f"{name}.ready.json"
        args = [
            sys.executable,
            "-m",
            "smartqueue",
            "sim",
            "--port=0",
            "--sidecar-port=0",
            f"--slots={slots}",
            f"--speed={speed:g}",
            f"--ready-file={ready}",
            *extra,
        ]
        child = self.spawn(name, pinned(LOAD_CPU, args))
        wait_until(ready.exists, child, what=name, log=lambda: self.log_tail(name))
        entry = json.loads(ready.read_text(encoding="utf-8"))["sims"][0]
        return Sim(name=name, url=entry["url"], sidecar_url=entry["sidecar_url"])

    def sim_fleets(
        self, fleets: Mapping[str, tuple[Path, str]], *, speed: float
    ) -> dict[str, dict[str, Sim]]:
        """`smartqueue sim-fleet` per name: (fleet file, core); all started, then waited for.

        Latency profiles come from the `sim-profiles.yaml` beside each fleet file.
        """
        started = {}
        for name, (fleet_file, cpu) in fleets.items():
            ready = self.workdir / f"{name}.ready.json"
            args = [
                sys.executable,
                "-m",
                "smartqueue",
                "sim-fleet",
                f"--fleet={fleet_file}",
                f"--speed={speed:g}",
                f"--ready-file={ready}",
            ]
            started[name] = (self.spawn(name, pinned(cpu, args)), ready)
        sims = {}
        for name, (child, ready) in started.items():
            wait_until(ready.exists, child, what=name, log=partial(self.log_tail, name))
            listed = json.loads(ready.read_text(encoding="utf-8"))["sims"]
            sims[name] = {
                s["name"]: Sim(name=s["name"], url=s["url"], sidecar_url=s["sidecar_url"])
                for s in listed
            }
        return sims

    def service(
        self,
        name: str,
        *,
        redis_url: str,
        fleet_file: Path,
        env: Mapping[str, str] | None = None,
        cpu: str = SERVICE_CPU,
        wait: bool = True,
    ) -> str:
        """`smartqueue serve` pinned to the service core, configured by env; its base URL.

        With `wait=False` it returns at once: `wait_healthy` then waits for it (several start
        faster side by side).
        """
        port = free_port()
        settings = {
            "SMARTQUEUE_REDIS_URL": redis_url,
            "SMARTQUEUE_FLEET": str(fleet_file),
            **(env or {}),
        }
        args = [
            sys.executable,
            "-m",
            "smartqueue",
            "serve",
            "--host",
            LOOPBACK,
            "--port",
            str(port),
            "--log-level",
            "warning",
        ]
        self.spawn(name, pinned(cpu, args), env=settings)
        url = f"http://{LOOPBACK}:{port}"
        if wait:
            self.wait_healthy(name, url)
        return url

    def wait_healthy(self, name: str, url: str) -> None:
        """Until the child called `name` answers `GET {url}/health` with 2xx."""
        wait_until(
            lambda: http_ok(f"{url}/health"),
            self.named[name],
            what=name,
            log=partial(self.log_tail, name),
        )

    def bare_app(self, name: str = "bare") -> str:
        """The bare FastAPI endpoint (`bench.bare_app`) under the service's uvicorn settings."""
        port = free_port()
        args = [sys.executable, "-m", "bench.bare_app", "--port", str(port)]
        child = self.spawn(name, pinned(SERVICE_CPU, args))
        url = f"http://{LOOPBACK}:{port}"
        wait_until(
            lambda: http_ok(f"{url}/health"), child, what=name, log=lambda: self.log_tail(name)
        )
        return url


def stop(child: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it does not end within the grace period."""
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def accepts(port: int) -> bool:
    """Whether something accepts TCP connections on the loopback port."""
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.5):
            return True
    except OSError:
        return False


def http_ok(url: str) -> bool:
    """Whether GET `url` answers 2xx."""
    try:
        return httpx.get(url, timeout=2.0).is_success
    except httpx.HTTPError:
        return False


def wait_until(
    ready: Callable[[], bool], child: subprocess.Popen[bytes], *, what: str, log: Callable[[], str]
) -> None:
    """Poll `ready()` until true; fail with the child's log if it exits or takes too long."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if ready():
            return
        if child.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not start (exit code {child.poll()}):\n{log()}")


def write_fleet(path: Path, gpus: list[dict[str, Any]], *, profiles: Mapping[str, Any]) -> Path:
    """A fleet file with one `default` route over `gpus`, and its `sim-profiles.yaml` beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {"gpus": gpus, "routes": {"default": [gpu["name"] for gpu in gpus]}}
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    (path.parent / "sim-profiles.yaml").write_text(yaml.safe_dump(dict(profiles)), encoding="utf-8")
    return path


def gpu_entry(sim: Sim, *, slots: int, model: str = "sim-model") -> dict[str, Any]:
    """A fleet-file GPU for a running sim (llama.cpp engine)."""
    return {
        "name": sim.name,
        "url": sim.url,
        "sidecar_url": sim.sidecar_url,
        "engine": "llamacpp",
        "model": model,
        "slots": slots,
        "vram_total_mb": 24576,
    }
