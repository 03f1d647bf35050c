"""`SMARTQUEUE_REDIS_URL`: which Redis deployment to talk to, parsed once at start-up.

    redis://host:6379/0, rediss://host:6380/0, unix:///run/redis.sock   one Redis
    redis+sentinel://h1:26379,h2:26379/mymaster/0                      Sentinel: service, db
    redis+cluster://h1:7000,h2:7001/                                    Redis Cluster (db 0)

Pure: no redis import. Passwords come from SMARTQUEUE_REDIS_PASSWORD and
SMARTQUEUE_SENTINEL_PASSWORD (a `redis://` URL may still carry its own); error messages never
repeat the URL, which may hold one.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

SENTINEL_PORT = 26379
CLUSTER_PORT = 6379
SINGLE_SCHEMES = ("redis", "rediss", "unix")


class RedisMode(StrEnum):
    """How the Redis deployment is run."""

    SINGLE = "single"
    SENTINEL = "sentinel"
    CLUSTER = "cluster"


@dataclass(frozen=True)
class RedisTarget:
    """A parsed Redis URL: a plain URL (single), or the seed nodes of Sentinel or Cluster."""

    mode: RedisMode
    url: str = ""
    nodes: tuple[tuple[str, int], ...] = ()
    service: str = ""
    db: int = 0


def parse_redis_url(url: str) -> RedisTarget:
    """The deployment `url` names; ValueError with one line saying what is wrong."""
    scheme, _, rest = url.partition("://")
    if not rest:
        raise ValueError("must look like redis://host:6379/0, redis+sentinel://h1:26379,"
                         "h2:26379/mymaster/0 or redis+cluster://h1:7000,h2:7001/")  # fmt: skip
    if scheme in SINGLE_SCHEMES:
        return _single(url)
    if scheme == "redis+sentinel":
        return _sentinel(rest)
    if scheme == "redis+cluster":
        return _cluster(rest)
    raise ValueError(f"unknown scheme {scheme!r}: use redis, rediss, unix, redis+sentinel or "
                     "redis+cluster")  # fmt: skip


def _single(url: str) -> RedisTarget:
    parts = urlsplit(url)
    if parts.scheme != "unix" and not parts.hostname:
        raise ValueError(f"a {parts.scheme}:// URL needs a host")
    try:
        _ = parts.port  # raises on a bad port
    except ValueError:
        raise ValueError("the port must be a number from 1 to 65535") from None
    return RedisTarget(RedisMode.SINGLE, url=url)


def _sentinel(rest: str) -> RedisTarget:
    where, _, path = rest.partition("/")
    service, _, db = path.strip("/").partition("/")
    if not service:
        raise ValueError("redis+sentinel:// needs the service name: "
                         "redis+sentinel://h1:26379,h2:26379/mymaster/0")  # fmt: skip
    if db and not db.isdigit():
        raise ValueError(f"redis+sentinel://: the database must be a number, got {db!r}")
    nodes = _nodes(where, default_port=SENTINEL_PORT, scheme="redis+sentinel")
    return RedisTarget(RedisMode.SENTINEL, nodes=nodes, service=service, db=int(db or 0))


def _cluster(rest: str) -> RedisTarget:
    where, _, path = rest.partition("/")
    if path.strip("/") not in ("", "0"):
        raise ValueError("redis+cluster:// has only database 0: end the URL with / or /0")
    return RedisTarget(RedisMode.CLUSTER, nodes=_nodes(where, default_port=CLUSTER_PORT,
                                                       scheme="redis+cluster"))  # fmt: skip


def _nodes(where: str, *, default_port: int, scheme: str) -> tuple[tuple[str, int], ...]:
    if "@" in where:
        raise ValueError(f"{scheme}:// takes no credentials in the URL: set SMARTQUEUE_"
                         "REDIS_PASSWORD (and SMARTQUEUE_SENTINEL_PASSWORD)")  # fmt: skip
    if "?" in where or "#" in where:
        raise ValueError(f"{scheme}:// takes no query or fragment")
    items = [item.strip() for item in where.split(",")]
    if not any(items):
        raise ValueError(f"{scheme}:// needs at least one host:port")
    return tuple(_node(item, default_port=default_port, scheme=scheme) for item in items)


def _node(item: str, *, default_port: int, scheme: str) -> tuple[str, int]:
    if item.startswith("["):  # [::1]:26379
        host, _, port = item[1:].partition("]")
        port = port.removeprefix(":")
    else:
        host, _, port = item.partition(":")
    if not host:
        raise ValueError(f"{scheme}://: an empty host in the node list")
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"{scheme}://: port {port!r} of {host} is not a number from 1 to 65535")
    return host, int(port) if port else default_port
