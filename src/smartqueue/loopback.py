"""Loopback-only hosts: everything `smartqueue stack` starts listens on 127.0.0.0/8 or ::1."""

from __future__ import annotations

import ipaddress
import socket


class NotLoopbackError(ValueError):
    """A host does not resolve, or resolves to an address outside loopback."""


def loopback_addresses(host: str) -> list[str]:
    """Every address `host` resolves to; all of them must be loopback (127.0.0.0/8 or ::1)."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise NotLoopbackError(f"cannot resolve host {host!r}: {error.strerror}") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    outside = [address for address in addresses if not ipaddress.ip_address(address).is_loopback]
    if outside:
        raise NotLoopbackError(
            f"host {host!r} resolves to non-loopback {', '.join(outside)}; "
            "only 127.0.0.0/8 and ::1 are allowed"
        )
    return addresses
