"""Run `smartqueue-sidecar` (or `smartqueue sidecar`) as a real process on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests.support.ports import free_port

SIDECAR_SCRIPT = str(Path(sys.executable).parent / "smartqueue-sidecar")
ALIAS = (sys.executable, "-m", "smartqueue", "sidecar")
STARTUP_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0
RUN_TIMEOUT_S = 30.0


def sidecar_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This environment plus `extra` (PYTHONPATH in `extra` goes first on the import path)."""
    env = {**os.environ, **(extra or {})}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return env


def run_sidecar(
    args: Sequence[str], *, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the sidecar to its end (for the refusals that stop it before it serves)."""
    return subprocess.run(
        [SIDECAR_SCRIPT, "--port", str(free_port()), *args],
        capture_output=True, text=True, env=sidecar_env(env), timeout=RUN_TIMEOUT_S, check=False,
    )  # fmt: skip


@contextmanager
def running_sidecar(
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    command: Sequence[str] = (SIDECAR_SCRIPT,),
) -> Iterator[str]:
    """The sidecar serving on 127.0.0.1 until the block ends; yields its base URL."""
    port = free_port()
    with subprocess.Popen(
        [*command, "--port", str(port), "--log-level", "warning", *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=sidecar_env(env),
    ) as process:  # fmt: skip
        try:
            wait_until_listening(process, port)
            yield f"http://127.0.0.1:{port}"
        finally:
            stop(process)


def wait_until_listening(process: subprocess.Popen[bytes], port: int) -> None:
    """Block until the process accepts connections; AssertionError with its stderr if it ends."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            stderr = process.stderr.read().decode() if process.stderr else ""
            raise AssertionError(f"sidecar exited with {process.returncode}: {stderr}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise AssertionError(f"sidecar not listening on port {port} after {STARTUP_TIMEOUT_S} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it does not stop in time."""
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
