"""`smartqueue stack`: the whole local stack on loopback, supervised (what `make run` starts).

In order, each one waited for: redis-server (AOF, in a work dir), the fleet's simulated GPUs
(`smartqueue-sim fleet`), `smartqueue serve`, and nginx running the config rendered for the same
fleet file. Then it prints the URLs and copy-paste examples, and on Ctrl-C or SIGTERM stops them
in reverse order (nginx first, Redis last), so nothing is left behind.

Children run in process groups of their own: a terminal's Ctrl-C reaches only this supervisor,
which stops them in order (smartqueue finishes before Redis goes). On Linux each child also gets
SIGTERM if the supervisor itself dies without stopping them.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Annotated
from urllib.parse import urlsplit

import httpx
import typer

from smartqueue.config import DEFAULT_ROUTE, FleetConfig, FleetError, GpuConfig, load_fleet
from smartqueue.loopback import NotLoopbackError, loopback_addresses
from smartqueue.nginx import NginxOptions, render_nginx_config, write_nginx_config

LOOPBACK = "127.0.0.1"
SIMULATOR = "smartqueue-sim"  # console script of the sibling package smartqueue_sim
START_TIMEOUT_S = 60.0
POLL_S = 0.1
STOP_TIMEOUT_S = 15.0
SERVICE_STOP_TIMEOUT_S = 45.0  # above smartqueue's default shutdown grace (30 s)
PR_SET_PDEATHSIG = 1
# Quicker than the service's defaults so the fallback demo reacts in seconds; env wins.
DEMO_TIMINGS = {"SMARTQUEUE_PROBE_INTERVAL_S": "1", "SMARTQUEUE_BREAKER_RECOVERY_S": "5"}
HELP = "Run the local stack on loopback: redis, sim GPUs, smartqueue and nginx (`make run`)."


class StackError(Exception):
    """A part of the stack failed to start or stopped on its own; the message is for the user."""


class StartRefused(StackError):
    """Nothing was started: the fleet file, a port or a program is not usable (one line)."""


@dataclass(frozen=True)
class StackPorts:
    """Where the stack's own servers listen on 127.0.0.1 (the sims use the fleet's ports)."""

    redis: int
    api: int
    nginx: int


# --- what the user reads --------------------------------------------------------------------


def demo_route(fleet: FleetConfig) -> str:
    """The route the examples use: one named after its only GPU's model, else `default`."""
    for route in fleet.route_names:
        gpus = fleet.route_gpus(route)
        if len(gpus) == 1 and gpus[0].model == route:
            return route
    single = [route for route in fleet.route_names if len(fleet.routes[route]) == 1]
    return single[0] if single else DEFAULT_ROUTE


def _gpu_lines(fleet: FleetConfig) -> list[str]:
    width = max(len(gpu.name) for gpu in fleet.gpus)
    model_width = max(len(gpu.model) for gpu in fleet.gpus)
    return [
        f"    {gpu.name:<{width}}  {gpu.engine.value:<8}  {gpu.model:<{model_width}}  "
        f"{gpu.url}  control {gpu.sidecar_url}/sim/faults"
        for gpu in fleet.gpus
    ]


def _examples(fleet: FleetConfig, ports: StackPorts, *, python: str) -> list[str]:
    # Unindented, so a copied heredoc runs as is.
    route = demo_route(fleet)
    model = fleet.route_gpus(route)[0].model
    base = f"http://{LOOPBACK}:{ports.nginx}/v1"
    body = {"model": model, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 16}
    return [
        f"Try it through nginx (X-Syslog-Model: {route} -> {', '.join(fleet.routes[route])}):",
        "",
        f"curl -si {base}/chat/completions -H 'Content-Type: application/json' \\",
        f"  -H 'X-Syslog-Model: {route}' -d '{json.dumps(body)}'",
        "",
        f"{python} - <<'PY'",
        "from openai import OpenAI",
        f'client = OpenAI(base_url="{base}", api_key="unused",',
        f'                default_headers={{"X-Syslog-Model": "{route}"}})',
        f'answer = client.chat.completions.create(model="{model}", max_tokens=16,',
        '    messages=[{"role": "user", "content": "hello"}])',
        "print(answer.model, answer.choices[0].message.content)",
        "PY",
    ]


def fault_command(gpu: GpuConfig, mode: str) -> str:
    """The curl that switches a sim GPU's fault (`refuse` stops it, `none` brings it back)."""
    body = json.dumps({"mode": mode})
    return f"curl -s {gpu.sidecar_url}/sim/faults -H 'Content-Type: application/json' -d '{body}'"


def _fallback_lines(fleet: FleetConfig, ports: StackPorts) -> list[str]:
    gpus = fleet.route_gpus(demo_route(fleet))
    names = ", ".join(gpu.name for gpu in gpus)
    return [
        f"Try the fallback: stop {names}, send the curl above from another terminal (it waits in",
        f"the queue), watch it in /status, then start {names} again: the curl completes.",
        "",
        *[fault_command(gpu, "refuse") for gpu in gpus],
        f"curl -s http://{LOOPBACK}:{ports.api}/status    # depth (or delayed) counts it",
        *[fault_command(gpu, "none") for gpu in gpus],
    ]


def _timings() -> str:
    probe_s, recovery_s = (os.environ.get(name, value) for name, value in DEMO_TIMINGS.items())
    return f"GPU probes every {probe_s} s, open breakers retry after {recovery_s} s"


def banner(fleet: FleetConfig, ports: StackPorts, *, workdir: Path, keep: bool, python: str) -> str:
    """What the stack prints once everything is up: URLs, examples, how to try the fallback."""
    api = f"http://{LOOPBACK}:{ports.api}"
    lifetime = "kept" if keep else "removed on exit"
    lines = [
        "",
        "smartqueue local stack is up (loopback only):",
        f"  OpenAI API through nginx  http://{LOOPBACK}:{ports.nginx}/v1   (what clients use)",
        f"  smartqueue API docs       {api}/docs",
        f"  queue overview            {api}/status",
        f"  redis                     redis://{LOOPBACK}:{ports.redis}/0",
        f"  data and logs             {workdir} ({lifetime})",
        f"  demo timings              {_timings()} (SMARTQUEUE_* env)",
        "  simulated GPUs (switch faults by POSTing to their control URL, see docs/sim.md):",
        *_gpu_lines(fleet),
        "",
        *_examples(fleet, ports, python=python),
        "",
        *_fallback_lines(fleet, ports),
        "",
        "Press Ctrl-C to stop.",
    ]
    return "\n".join(lines)


# --- checks before anything starts ---------------------------------------------------------


def find_program(name: str) -> str:
    """Path of a system program (also in /usr/sbin, where Debian puts nginx)."""
    found = shutil.which(name) or next(
        (str(p) for p in (Path("/usr/sbin") / name, Path("/usr/bin") / name) if p.exists()), None
    )
    if found is None:
        raise StartRefused(
            f"{name} is not installed (make run installs it: apt-get install {name})"
        )
    return found


def find_simulator() -> str:
    """The `smartqueue-sim` console script: beside this Python (its venv), else on PATH."""
    beside_python = Path(sys.executable).with_name(SIMULATOR)
    found = str(beside_python) if beside_python.exists() else shutil.which(SIMULATOR)
    if found is None:
        raise StartRefused(f"the GPU simulator is not installed ({SIMULATOR} not found)")
    return found


def _check_free(address: str, port: int, *, what: str) -> None:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise StartRefused(f"port {port} ({what}) is already in use") from None
            message = f"cannot listen on {address}:{port} ({what}): {error.strerror}"
            raise StartRefused(message) from None


def wanted_ports(fleet: FleetConfig, ports: StackPorts) -> list[tuple[str, int, str]]:
    """(host, port, what) for every port the stack will listen on."""
    wanted = [
        (LOOPBACK, ports.redis, "redis, --redis-port"),
        (LOOPBACK, ports.api, "smartqueue API, --api-port"),
        (LOOPBACK, ports.nginx, "nginx, --nginx-port"),
    ]
    for gpu in fleet.gpus:
        for kind, url in (("sim", gpu.url), ("sim sidecar", gpu.sidecar_url)):
            parts = urlsplit(url)
            wanted.append(
                (parts.hostname or "", parts.port or 80, f"{kind} {gpu.name}, fleet file")
            )
    return wanted


def check_ports(fleet: FleetConfig, ports: StackPorts) -> None:
    """Refuse to start when a port is taken or listed twice (one line saying which)."""
    seen: dict[int, str] = {}
    for host, port, what in wanted_ports(fleet, ports):
        if port in seen:
            raise StartRefused(f"port {port} is wanted twice: {seen[port]} and {what}")
        seen[port] = what
        try:
            addresses = loopback_addresses(host)
        except NotLoopbackError as error:
            raise StartRefused(f"{what}: {error}") from None
        for address in addresses:
            _check_free(address, port, what=what)


# --- supervised children --------------------------------------------------------------------


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    """One supervised process and its log file."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    stop_timeout_s: float

    def exited(self) -> bool:
        """Whether the process has ended."""
        return self.process.poll() is not None

    def describe_exit(self, lines: int = 15) -> str:
        """Its exit code and the end of its log, for an error message."""
        text = self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""
        tail = "\n".join(text.splitlines()[-lines:])
        return f"exit code {self.process.returncode}; the end of its log:\n{tail}"


class Supervisor:
    """Starts children in order, watches them, and stops them in reverse order."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.children: list[Child] = []
        self.signals = 0

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        """SIGINT/SIGTERM: the first asks for a clean stop, a second one hurries it."""
        self.signals += 1

    def spawn(
        self, name: str, args: list[str], *, env: dict[str, str] | None = None,
        stop_timeout_s: float = STOP_TIMEOUT_S,
    ) -> Child:  # fmt: skip
        """Start `args` in its own process group, output to `<workdir>/<name>.log`."""
        log = self.workdir / f"{name}.log"
        with log.open("ab") as output:
            process = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                env=env, process_group=0, preexec_fn=_die_with_parent,
            )  # fmt: skip
        child = Child(name, process, log, stop_timeout_s)
        self.children.append(child)
        return child

    def wait_ready(self, child: Child, ready: Callable[[], bool], *, what: str) -> None:
        """Block until `ready()`; StackError if the child exits, a signal comes or time is up."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while not ready():
            if self.signals:
                raise StackError("interrupted while starting")
            if child.exited():
                raise StackError(f"{child.name} stopped before {what}: {child.describe_exit()}")
            if time.monotonic() > deadline:
                raise StackError(
                    f"{child.name}: not {what} after {START_TIMEOUT_S:g} s ({child.log})"
                )
            time.sleep(POLL_S)

    def watch(self) -> Child | None:
        """Block until a stop signal (None) or until a child exits on its own (that child)."""
        while not self.signals:
            for child in self.children:
                if child.exited():
                    return child
            time.sleep(POLL_S)
        return None

    def stop_all(self) -> None:
        """SIGTERM each child, last started first; SIGKILL past its timeout or on another Ctrl-C."""
        signals_before = self.signals
        for child in reversed(self.children):
            self._stop(child, hurry=lambda: self.signals > signals_before)

    def _stop(self, child: Child, *, hurry: Callable[[], bool]) -> None:
        if child.exited():
            return
        child.process.terminate()
        deadline = time.monotonic() + child.stop_timeout_s
        while not child.exited():
            if hurry() or time.monotonic() > deadline:
                child.process.kill()
                child.process.wait()
                return
            time.sleep(POLL_S / 5)


# --- readiness probes -----------------------------------------------------------------------


def accepts(port: int, host: str = LOOPBACK) -> Callable[[], bool]:
    """A probe: something accepts TCP connections on host:port."""

    def probe() -> bool:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            return False

    return probe


def http_ok(url: str) -> Callable[[], bool]:
    """A probe: GET `url` answers 200."""

    def probe() -> bool:
        try:
            return httpx.get(url, timeout=1.0, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    return probe


# --- the parts --------------------------------------------------------------------------------


def start_redis(supervisor: Supervisor, ports: StackPorts) -> None:
    """redis-server on loopback with AOF on and no eviction, data in the work dir."""
    data = supervisor.workdir / "redis"
    data.mkdir(mode=0o700, exist_ok=True)  # a kept --workdir keeps its AOF between runs
    args = [find_program("redis-server"), "--port", str(ports.redis), "--bind", LOOPBACK,
            "--dir", str(data), "--appendonly", "yes", "--maxmemory-policy", "noeviction",
            "--save", "", "--daemonize", "no"]  # fmt: skip
    child = supervisor.spawn("redis", args)
    supervisor.wait_ready(child, accepts(ports.redis), what="listening")


def start_sims(supervisor: Supervisor, fleet_path: Path, *, speed: float) -> None:
    """`smartqueue-sim fleet`: one simulated GPU per GPU of the fleet file, on its ports."""
    ready_file = supervisor.workdir / "sims.ready.json"
    ready_file.unlink(missing_ok=True)  # left by an earlier run in a kept --workdir
    args = [find_simulator(), "fleet", "--fleet", str(fleet_path),
            "--speed", f"{speed:g}", "--ready-file", str(ready_file)]  # fmt: skip
    child = supervisor.spawn("sims", args, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    supervisor.wait_ready(child, ready_file.exists, what="all sims listening")


def start_service(supervisor: Supervisor, fleet_path: Path, ports: StackPorts) -> None:
    """`smartqueue serve` on the stack's Redis and fleet file (other SMARTQUEUE_* pass through)."""
    env = {**DEMO_TIMINGS, **os.environ, "PYTHONUNBUFFERED": "1",
           "SMARTQUEUE_REDIS_URL": f"redis://{LOOPBACK}:{ports.redis}/0",
           "SMARTQUEUE_FLEET": str(fleet_path.resolve())}  # fmt: skip
    args = [sys.executable, "-m", "smartqueue", "serve", "--host", LOOPBACK,
            "--port", str(ports.api)]  # fmt: skip
    child = supervisor.spawn("smartqueue", args, env=env, stop_timeout_s=SERVICE_STOP_TIMEOUT_S)
    supervisor.wait_ready(child, http_ok(f"http://{LOOPBACK}:{ports.api}/health"), what="ready")


def start_nginx(supervisor: Supervisor, fleet: FleetConfig, ports: StackPorts) -> None:
    """nginx running the config rendered for the fleet, the stack's smartqueue as its queue."""
    prefix = supervisor.workdir / "nginx"
    # As root, nginx's workers run as nobody and use the temp dirs made here.
    prefix.mkdir(mode=0o755, exist_ok=True)
    options = NginxOptions(
        listen=f"{LOOPBACK}:{ports.nginx}", queue_url=f"http://{LOOPBACK}:{ports.api}",
        prefix=str(prefix), worker_processes="1",
    )  # fmt: skip
    config = prefix / "nginx.conf"
    write_nginx_config(config, render_nginx_config(fleet, options))
    args = [find_program("nginx"), "-p", str(prefix), "-c", str(config),
            "-e", str(prefix / "error.log"), "-g", "daemon off;"]  # fmt: skip
    child = supervisor.spawn("nginx", args)
    supervisor.wait_ready(child, accepts(ports.nginx), what="listening")


def start_all(supervisor: Supervisor, fleet_path: Path, fleet: FleetConfig, *,
              ports: StackPorts, sim_speed: float) -> None:  # fmt: skip
    """Every part, in dependency order."""
    start_redis(supervisor, ports)
    start_sims(supervisor, fleet_path, speed=sim_speed)
    start_service(supervisor, fleet_path, ports)
    start_nginx(supervisor, fleet, ports)


# --- the command ------------------------------------------------------------------------------


def _workdir(given: Path | None) -> Path:
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        return given.resolve()
    workdir = Path(tempfile.mkdtemp(prefix="smartqueue-stack-"))
    workdir.chmod(0o711)  # nginx workers (nobody, as root) reach their temp dirs inside
    return workdir


def _python_for_examples() -> str:
    python = Path(sys.executable)
    try:
        return str(python.relative_to(Path.cwd()))
    except ValueError:
        return str(python)


def _load(fleet_path: Path, ports: StackPorts) -> FleetConfig:
    try:
        fleet = load_fleet(fleet_path)
    except FleetError as error:
        raise StartRefused(str(error)) from None
    check_ports(fleet, ports)
    find_simulator()
    find_program("redis-server")
    find_program("nginx")
    return fleet


def supervise(supervisor: Supervisor, fleet_path: Path, fleet: FleetConfig, *,
              ports: StackPorts, sim_speed: float, keep: bool) -> None:  # fmt: skip
    """Start everything, print how to use it, then block until a stop signal."""
    start_all(supervisor, fleet_path, fleet, ports=ports, sim_speed=sim_speed)
    typer.echo(banner(fleet, ports, workdir=supervisor.workdir, keep=keep,
                      python=_python_for_examples()))  # fmt: skip
    failed = supervisor.watch()
    if failed is not None:
        raise StackError(f"{failed.name} stopped on its own: {failed.describe_exit()}")
    typer.echo("\nstopping...")


def run_stack(
    fleet_path: Path, ports: StackPorts, *, sim_speed: float, workdir: Path | None
) -> int:
    """Run the stack until a signal or a failure, then stop every part; the exit code."""
    fleet = _load(fleet_path, ports)
    supervisor = Supervisor(_workdir(workdir))
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, supervisor.on_signal)
    code = 0
    try:
        supervise(supervisor, fleet_path, fleet, ports=ports, sim_speed=sim_speed,
                  keep=workdir is not None)  # fmt: skip
    except StackError as error:
        typer.echo(f"smartqueue stack: {error}", err=True)
        code = 1
    finally:
        supervisor.stop_all()
        if workdir is None:
            shutil.rmtree(supervisor.workdir, ignore_errors=True)
    typer.echo("smartqueue local stack stopped")
    return code


def stack_command(
    fleet: Annotated[
        Path, typer.Option(help="Fleet file; each GPU runs as a sim on its URLs' ports.")
    ] = Path("deploy/fleet.local.yaml"),
    nginx_port: Annotated[
        int, typer.Option(envvar="SMARTQUEUE_STACK_NGINX_PORT", help="nginx (the OpenAI API).")
    ] = 8088,
    api_port: Annotated[
        int, typer.Option(envvar="SMARTQUEUE_STACK_API_PORT", help="smartqueue API.")
    ] = 8091,
    redis_port: Annotated[
        int, typer.Option(envvar="SMARTQUEUE_STACK_REDIS_PORT", help="redis-server.")
    ] = 16379,
    sim_speed: Annotated[
        float, typer.Option(min=0.001, help="Sim GPUs run this many times faster.")
    ] = 1.0,
    workdir: Annotated[
        Path | None, typer.Option(help="Keep data and logs here (default: a temp dir, removed).")
    ] = None,
) -> None:
    """Run redis, the fleet's sim GPUs, smartqueue and nginx on loopback until Ctrl-C."""
    ports = StackPorts(redis=redis_port, api=api_port, nginx=nginx_port)
    try:
        code = run_stack(fleet, ports, sim_speed=sim_speed, workdir=workdir)
    except StartRefused as error:
        typer.echo(f"smartqueue stack: {error}", err=True)
        raise typer.Exit(code=2) from None
    raise typer.Exit(code=code)


def register(app: typer.Typer) -> None:
    """Add the `stack` command to the `smartqueue` CLI."""
    app.command("stack", help=HELP)(stack_command)
