"""A real redis-server on a free loopback port, in its own temp dir (never the machine's 6379)."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from tests.support.binaries import require_binary
from tests.support.ports import free_port, wait_for_port


class RedisServer:
    """One redis-server process; can be killed and restarted on the same port and data dir."""

    def __init__(
        self, workdir: Path, *, appendonly: bool = False, extra_args: Sequence[str] = ()
    ) -> None:
        self.binary = require_binary("redis-server")
        self.workdir = workdir
        self.port = free_port()
        self.appendonly = appendonly
        self.extra_args = list(extra_args)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """redis:// URL of this server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (or restart) the server and wait until it accepts connections."""
        aof = "yes" if self.appendonly else "no"
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.workdir), "--save", "", "--maxmemory-policy", "noeviction",
                "--appendonly", aof, "--appendfsync", "always", *self.extra_args]  # fmt: skip
        with (self.workdir / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(self.port)

    def kill(self) -> None:
        """SIGKILL the server (a crash: no shutdown save)."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
            self.process = None

    def stop(self) -> None:
        """Stop the server if it runs (thawed first, so it can)."""
        if self.process is not None:
            self.thaw()
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def freeze(self) -> None:
        """SIGSTOP: the server hangs, its sockets stay open (a stalled host)."""
        if self.process is not None:
            self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT after freeze()."""
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)
