"""Loopback-only listening sockets, and a uvicorn server that can stop and resume accepting."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp

BACKLOG = 2048


class BindError(ValueError):
    """The sim cannot listen where it was asked to (not loopback, or the port is taken)."""


def loopback_addresses(host: str) -> list[str]:
    """Every address `host` resolves to; all of them must be loopback (127.0.0.0/8 or ::1)."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise BindError(f"cannot resolve host {host!r}: {error.strerror}") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    outside = [address for address in addresses if not ipaddress.ip_address(address).is_loopback]
    if outside:
        raise BindError(
            f"host {host!r} resolves to non-loopback {', '.join(outside)}; "
            "the sim only binds 127.0.0.0/8 and ::1"
        )
    return addresses


def _bind_one(address: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((address, port))
        sock.listen(BACKLOG)
    except OSError as error:
        sock.close()
        raise BindError(f"cannot listen on {address} port {port}: {error.strerror}") from None
    sock.setblocking(False)
    return sock


def bind_listeners(addresses: list[str], port: int) -> list[socket.socket]:
    """Listening sockets on every address, all on one port (port 0: the first one picks it)."""
    sockets: list[socket.socket] = []
    try:
        for address in addresses:
            sockets.append(_bind_one(address, port))
            port = port or sockets[0].getsockname()[1]
    except BindError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def sim_uvicorn_config(app: ASGIApp, *, log_level: str) -> uvicorn.Config:
    """Uvicorn settings shared by every sim port."""
    return uvicorn.Config(
        app,
        http="httptools",
        ws="none",
        lifespan="off",
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=1,
        backlog=BACKLOG,
    )


class SwitchableServer(uvicorn.Server):
    """A uvicorn server on pre-bound sockets that can close its listeners and reopen them."""

    def __init__(self, config: uvicorn.Config, sockets: list[socket.socket]) -> None:
        super().__init__(config)
        self._sockets = sockets
        self._endpoints = [sock.getsockname()[:2] for sock in sockets]
        self.accepting = True

    @property
    def port(self) -> int:
        """The port every listener uses."""
        return int(self._endpoints[0][1])

    async def serve_bound(self) -> None:
        """Serve on the sockets given at construction until `should_exit`."""
        await self.serve(sockets=self._sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Signals are handled once for every server of the process, by the runner."""
        yield

    async def set_accepting(self, accepting: bool) -> None:
        """Reopen the listeners (True) or close them so connects are refused (False)."""
        if accepting == self.accepting:
            return
        if accepting:
            await self._listen_again()
        else:
            self._stop_listening()
        self.accepting = accepting

    def _stop_listening(self) -> None:
        for server in self.servers:
            server.close()
        # Idle keep-alive connections close too, so pooled clients are refused as well.
        for connection in list(self.server_state.connections):
            connection.shutdown()

    async def _listen_again(self) -> None:
        loop = asyncio.get_running_loop()
        sockets = [_bind_one(str(address), int(port)) for address, port in self._endpoints]
        self.servers = [
            await loop.create_server(self._new_protocol, sock=sock, backlog=BACKLOG)
            for sock in sockets
        ]

    def _new_protocol(self) -> asyncio.Protocol:
        # The same factory uvicorn's startup() builds for its listeners.
        return self.config.http_protocol_class(  # type: ignore[call-arg]
            config=self.config, server_state=self.server_state, app_state=self.lifespan.state
        )
