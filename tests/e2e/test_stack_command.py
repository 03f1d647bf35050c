"""`smartqueue stack` (what `make run` starts): serves through nginx, stops every child cleanly."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from smartqueue.loopback import NotLoopbackError, loopback_addresses
from smartqueue.stack import StartRefused, find_simulator
from tests.support.binaries import require_binary
from tests.support.ports import free_port

pytestmark = pytest.mark.slow

READY_LINE = "Press Ctrl-C to stop."
START_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 60.0


def loopback_fleet(path: Path) -> Path:
    """A two-GPU fleet file whose sims listen on free loopback ports."""
    gpus = [
        {"name": name, "url": f"http://127.0.0.1:{free_port()}",
         "sidecar_url": f"http://127.0.0.1:{free_port()}", "engine": engine,
         "model": f"model-{name}", "slots": 2, "vram_total_mb": 24576}
        for name, engine in (("a", "llamacpp"), ("b", "vllm"))
    ]  # fmt: skip
    routes = {"default": ["a", "b"], "model-b": ["b"]}
    path.write_text(yaml.safe_dump({"gpus": gpus, "routes": routes}), encoding="utf-8")
    return path


def stack_command(fleet: Path, *, api_port: int, nginx_port: int) -> list[str]:
    """`smartqueue stack` on free ports for everything."""
    return [sys.executable, "-m", "smartqueue", "stack", f"--fleet={fleet}",
            f"--redis-port={free_port()}", f"--api-port={api_port}",
            f"--nginx-port={nginx_port}", "--sim-speed=50"]  # fmt: skip


@contextmanager
def running(command: list[str], output: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run `command` with output to a file; if the test fails, stop it (its children follow)."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("SMARTQUEUE_")}  # fmt: skip
    with output.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()  # the children get SIGTERM through their parent-death signal
                process.wait()


def wait_for_banner(process: subprocess.Popen[bytes], output: Path) -> str:
    """The stack's output once it printed that it is up."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        text = output.read_text(encoding="utf-8", errors="replace")
        if READY_LINE in text:
            return text
        if process.poll() is not None:
            break
        time.sleep(0.1)
    raise AssertionError(f"stack not up (exit code {process.poll()}):\n{output.read_text()}")


def process_start_times() -> dict[int, tuple[int, str]]:
    """Every process: pid -> (parent pid, start time), from /proc."""
    table: dict[int, tuple[int, str]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # ended while we looked
        fields = text[text.rindex(")") + 2 :].split()
        table[int(stat.parent.name)] = (int(fields[1]), fields[19])
    return table


def descendants(pid: int) -> dict[int, str]:
    """Every process below `pid`: pid -> start time (to tell a reused pid apart)."""
    table, found, frontier = process_start_times(), {}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, (ppid, started) in table.items():
            if ppid == parent:
                found[child] = started
                frontier.append(child)
    return found


def still_running(processes: dict[int, str]) -> list[int]:
    """Those of `processes` that still exist (same pid and start time)."""
    table = process_start_times()
    return [pid for pid, started in processes.items() if table.get(pid, (0, ""))[1] == started]


def run_printed_python_example(banner: str) -> subprocess.CompletedProcess[str]:
    """Run the openai example the stack printed, exactly as a user would paste it."""
    found = re.search(r"^\S+ - <<'PY'$.*?^PY$", banner, flags=re.MULTILINE | re.DOTALL)
    assert found, banner
    return subprocess.run(["bash", "-c", found.group(0)], capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip


def test_stack_serves_through_nginx_and_sigint_stops_every_child(
    tmp_path: Path, nginx_binary: str
) -> None:
    require_binary("redis-server")
    api_port, nginx_port = free_port(), free_port()
    command = stack_command(loopback_fleet(tmp_path / "fleet.yaml"), api_port=api_port,
                            nginx_port=nginx_port)  # fmt: skip
    output = tmp_path / "stack.out"
    with running(command, output) as stack:
        banner = wait_for_banner(stack, output)
        children = descendants(stack.pid)
        example = run_printed_python_example(banner)
        stack.send_signal(signal.SIGINT)
        code = stack.wait(timeout=STOP_TIMEOUT_S)

    workdir = Path(re.findall(r"data and logs\s+(\S+)", banner)[0])
    assert f"http://127.0.0.1:{api_port}/docs" in banner
    assert f"http://127.0.0.1:{api_port}/status" in banner
    assert f"http://127.0.0.1:{nginx_port}/v1" in banner
    assert example.returncode == 0, example.stderr
    assert example.stdout.startswith("model-b "), example.stdout  # the route named after b's model
    assert len(children) >= 5, children  # redis, sims, smartqueue, nginx master + worker
    assert code == 0, output.read_text()
    assert still_running(children) == []
    assert not workdir.exists()
    assert output.read_text().rstrip().endswith("smartqueue local stack stopped")


def test_stack_with_a_port_taken_refuses_to_start_in_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = stack_command(loopback_fleet(tmp_path / "fleet.yaml"), api_port=port,
                                nginx_port=free_port())  # fmt: skip
        result = subprocess.run(command, capture_output=True, timeout=60, check=False)

    assert result.returncode == 2
    assert result.stdout == b""
    assert result.stderr.decode().splitlines() == [
        f"smartqueue stack: port {port} (smartqueue API, --api-port) is already in use"
    ]


def test_stack_finds_the_simulator_console_script_beside_its_python() -> None:
    assert find_simulator() == str(Path(sys.executable).with_name("smartqueue-sim"))


def test_stack_without_the_simulator_installed_refuses_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(StartRefused, match="simulator is not installed"):
        find_simulator()


@pytest.mark.parametrize("host", ["localhost", "::1", "127.0.0.5"])
def test_stack_hosts_on_loopback_resolve_to_their_addresses(host: str) -> None:
    assert loopback_addresses(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1"])
def test_stack_hosts_outside_loopback_are_refused(host: str) -> None:
    with pytest.raises(NotLoopbackError, match="non-loopback"):
        loopback_addresses(host)
