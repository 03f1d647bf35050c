"""The real nginx binary on a loopback port, configured by `render_nginx_config`."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from smartqueue.config import FleetConfig
from smartqueue.nginx import NginxOptions, render_nginx_config, write_nginx_config
from tests.support.ports import free_port


def render_into(
    directory: Path, fleet: FleetConfig, *, port: int, **overrides: Any
) -> tuple[Path, NginxOptions]:
    """Render `fleet` into `directory`/nginx.conf, listening on 127.0.0.1:`port`."""
    values: dict[str, Any] = {
        "listen": f"127.0.0.1:{port}",
        "prefix": str(directory),
        "worker_processes": "1",
        "worker_connections": 256,
    }
    options = NginxOptions.model_validate({**values, **overrides})
    path = directory / "nginx.conf"
    write_nginx_config(path, render_nginx_config(fleet, options))
    return path, options


async def _wait_until_listening(port: int, process: asyncio.subprocess.Process, log: Path) -> None:
    async with asyncio.timeout(10):
        while process.returncode is None:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.02)
                continue
            writer.close()
            await writer.wait_closed()
            return
    output = await asyncio.to_thread(log.read_text, errors="replace")
    raise RuntimeError(f"nginx exited with {process.returncode}: {output}")


@contextlib.asynccontextmanager
async def running_nginx(
    binary: str, directory: Path, fleet: FleetConfig, **overrides: Any
) -> AsyncIterator[str]:
    """Run nginx in the foreground on a free port for the block; yields its base URL."""
    port = free_port()
    config, options = render_into(directory, fleet, port=port, **overrides)
    log = directory / "nginx.stderr"
    args = ["-p", options.prefix, "-c", str(config), "-e", "stderr", "-g", "daemon off;"]
    with log.open("wb") as output:
        process = await asyncio.create_subprocess_exec(
            binary, *args, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        await _wait_until_listening(port, process, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        if process.returncode is None:
            process.terminate()
        await asyncio.wait_for(process.wait(), timeout=10)
