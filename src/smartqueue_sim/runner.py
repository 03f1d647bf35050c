"""Run simulated GPUs: bind their ports, serve them on one event loop, stop on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from smartqueue_sim.faults import FaultMode
from smartqueue_sim.gpu import SimGpu, SimSettings
from smartqueue_sim.listener import (
    SwitchableServer,
    bind_listeners,
    loopback_addresses,
    sim_uvicorn_config,
)
from smartqueue_sim.server import build_engine_app
from smartqueue_sim.sidecar import build_sidecar_app

STARTUP_TIMEOUT_S = 30.0
STARTUP_POLL_S = 0.01


@dataclass(frozen=True, slots=True)
class SimAddress:
    """Where one simulated GPU listens."""

    host: str
    port: int
    sidecar_port: int


@dataclass(frozen=True, slots=True)
class SimNode:
    """One simulated GPU with its two servers."""

    sim: SimGpu
    main: SwitchableServer
    sidecar: SwitchableServer
    host: str

    @property
    def url(self) -> str:
        """Base URL of the OpenAI-compatible server."""
        return f"http://{_url_host(self.host)}:{self.main.port}"

    @property
    def sidecar_url(self) -> str:
        """Base URL of the sidecar and control API."""
        return f"http://{_url_host(self.host)}:{self.sidecar.port}"


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def build_node(settings: SimSettings, address: SimAddress, *, log_level: str) -> SimNode:
    """Bind both ports of one simulated GPU (BindError if it cannot) and build its apps."""
    addresses = loopback_addresses(address.host)
    sim = SimGpu(settings)
    main_sockets = bind_listeners(addresses, address.port)
    sidecar_sockets = bind_listeners(addresses, address.sidecar_port)
    main = SwitchableServer(
        sim_uvicorn_config(build_engine_app(sim), log_level=log_level), main_sockets
    )
    sidecar = SwitchableServer(
        sim_uvicorn_config(build_sidecar_app(sim), log_level=log_level), sidecar_sockets
    )
    sim.attach_listener(main)
    return SimNode(sim=sim, main=main, sidecar=sidecar, host=address.host)


def describe(nodes: list[SimNode]) -> dict[str, object]:
    """The ready-file document: where each simulated GPU answers."""
    sims = [
        {"name": node.sim.settings.name, "url": node.url, "sidecar_url": node.sidecar_url}
        for node in nodes
    ]
    return {"pid": os.getpid(), "sims": sims}


def write_ready_file(path: Path, nodes: list[SimNode]) -> None:
    """Write the ready file atomically, so a reader never sees half of it."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(describe(nodes)), encoding="utf-8")
    partial.replace(path)


async def serve_nodes(nodes: list[SimNode], *, on_ready: Callable[[], None]) -> None:
    """Serve every node until SIGINT or SIGTERM; `on_ready` runs once all of them listen."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    servers = [server for node in nodes for server in (node.main, node.sidecar)]
    async with asyncio.TaskGroup() as group:
        for server in servers:
            group.create_task(server.serve_bound())
        await _wait_started(servers)
        for node in nodes:
            await _apply_start_faults(node)
        on_ready()
        await stop.wait()
        for server in servers:
            server.should_exit = True


async def _wait_started(servers: list[SwitchableServer]) -> None:
    # uvicorn offers a `started` flag, not an event, so poll it.
    for _ in range(int(STARTUP_TIMEOUT_S / STARTUP_POLL_S)):
        if all(server.started for server in servers):
            return
        await asyncio.sleep(STARTUP_POLL_S)
    raise TimeoutError(f"sim servers did not start within {STARTUP_TIMEOUT_S} s")


async def _apply_start_faults(node: SimNode) -> None:
    if node.sim.faults.mode is FaultMode.REFUSE:
        await node.main.set_accepting(False)


def run_nodes(nodes: list[SimNode], *, ready_file: Path | None) -> None:
    """Serve the nodes on a fresh event loop (uvloop when installed) until a stop signal."""

    def on_ready() -> None:
        for node in nodes:
            name, engine = node.sim.settings.name, node.sim.settings.engine
            print(f"sim {name} ({engine}): {node.url} sidecar {node.sidecar_url}", file=sys.stderr)
        if ready_file is not None:
            write_ready_file(ready_file, nodes)

    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(serve_nodes(nodes, on_ready=on_ready))


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # uvicorn[standard] brings it; plain asyncio works too
        return None
    return uvloop.new_event_loop
