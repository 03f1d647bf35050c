"""`smartqueue-sidecar` (also `smartqueue sidecar`): serve this host's GPU metrics."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import uvicorn

from smartqueue_sidecar.app import build_app
from smartqueue_sidecar.opening import SourceChoice, open_source
from smartqueue_sidecar.readings import SourceUnavailable

DEFAULT_PORT = 8090
EXIT_NO_SOURCE = 2
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def port_number(text: str) -> int:
    """A TCP port, 0 (any free port) to 65535."""
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a TCP port (0-65535)")
    return port


def build_parser(prog: str) -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument("--port", type=port_number, default=DEFAULT_PORT, help="default 8090")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; "
        "a GPU host serving the queue's probes needs 0.0.0.0 or its LAN address)"
    )  # fmt: skip
    parser.add_argument(
        "--source", type=SourceChoice, choices=list(SourceChoice), default=SourceChoice.AUTO,
        help="auto (default) tries nvml, then amdsmi, then sysfs",
    )  # fmt: skip
    parser.add_argument(
        "--sysfs-root", type=Path, default=Path("/sys"),
        help="read the sysfs source's files here instead of /sys",
    )  # fmt: skip
    parser.add_argument("--log-level", choices=LOG_LEVELS, default="info")
    return parser


def main(argv: Sequence[str] | None = None, *, prog: str = "smartqueue-sidecar") -> int:
    """Run the sidecar until stopped; 2 when no GPU source is usable."""
    args = build_parser(prog).parse_args(argv)
    try:
        source = open_source(args.source, sysfs_root=args.sysfs_root)
    except SourceUnavailable as error:
        print(f"{prog}: {error}", file=sys.stderr)
        return EXIT_NO_SOURCE
    gpus = ", ".join(f"GPU {index} = {device}" for index, device in enumerate(source.devices))
    print(f"{prog}: reading through {source.name}: {gpus}", file=sys.stderr)
    try:
        uvicorn.run(
            build_app(source), host=args.host, port=args.port,
            log_level=args.log_level, access_log=False,
        )  # fmt: skip
    finally:
        source.close()
    return 0
