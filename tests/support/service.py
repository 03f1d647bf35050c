"""Run `smartqueue serve` as a real process (a replica) for crash and multi-replica tests.

    with running_service(settings, fleet, workdir=tmp_path / "a") as replica:
        httpx.post(f"{replica.url}/enqueue", json=...)
        replica.kill9()  # a crash: no shutdown, no release

The settings object is turned into `SMARTQUEUE_*` env vars and the fleet into a YAML file, so
the process runs exactly the configuration an in-process test would. Start the sims first: the
replica probes them from its first second.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml
from pydantic import SecretStr

from smartqueue.config import FleetConfig, Settings
from tests.support.ports import free_port

STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class ServiceHandle:
    """One running replica: its base URL, its process and its log."""

    url: str
    process: subprocess.Popen[bytes]
    log_file: Path

    @property
    def pid(self) -> int:
        """The replica's process id (part of its consumers' replica name)."""
        return self.process.pid

    def kill9(self) -> None:
        """SIGKILL the replica: it releases nothing and forgets nothing."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=STOP_TIMEOUT_S)

    def stop(self) -> int | None:
        """SIGTERM (graceful shutdown) and wait; the exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the replica's log, for failure messages."""
        return self.log_file.read_text(encoding="utf-8", errors="replace")[-chars:]


def settings_env(settings: Settings) -> dict[str, str]:
    """`SMARTQUEUE_*` variables that make `Settings()` equal `settings`."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        env[f"SMARTQUEUE_{name.upper()}"] = text
    return env


def write_fleet(fleet: FleetConfig, path: Path) -> Path:
    """The fleet as a YAML fleet file at `path`."""
    path.write_text(yaml.safe_dump(fleet.model_dump(mode="json", exclude_none=True)), "utf-8")
    return path


@contextmanager
def running_service(
    settings: Settings,
    fleet: FleetConfig,
    *,
    workdir: Path,
    extra_env: Mapping[str, str] | None = None,
    startup_timeout_s: float = STARTUP_TIMEOUT_S,
) -> Iterator[ServiceHandle]:
    """Run `python -m smartqueue serve` on a free loopback port until the block ends."""
    workdir.mkdir(parents=True, exist_ok=True)
    fleet_file = write_fleet(fleet, workdir / "fleet.yaml")
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("SMARTQUEUE_")}  # fmt: skip
    env |= settings_env(settings) | {"SMARTQUEUE_FLEET": str(fleet_file), "PYTHONUNBUFFERED": "1"}
    env |= dict(extra_env or {})
    port = free_port()
    log_file = workdir / "service.log"
    command = [sys.executable, "-m", "smartqueue", "serve", "--host", "127.0.0.1",
               "--port", str(port)]  # fmt: skip
    with log_file.open("ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    handle = ServiceHandle(f"http://127.0.0.1:{port}", process, log_file)
    try:
        _wait_live(handle, startup_timeout_s)
        yield handle
    finally:
        handle.stop()


def _wait_live(handle: ServiceHandle, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if handle.process.poll() is not None:
            break
        try:
            if httpx.get(f"{handle.url}/livez", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    code = handle.process.poll()
    raise RuntimeError(f"service did not come up (exit code {code}):\n{handle.log_tail()}")
