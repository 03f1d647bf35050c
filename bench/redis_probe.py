"""What Redis itself reports: commands executed (also those called inside Lua) and memory."""

from __future__ import annotations

from collections import Counter
from typing import cast

import redis

IGNORED = frozenset(
    {"info", "memory", "scan", "ping", "config|get", "config|set", "client|setname"}
)


def client(url: str) -> redis.Redis:
    """A synchronous client for measurements (never on the measured path)."""
    return redis.Redis.from_url(url)


def command_calls(connection: redis.Redis) -> Counter[str]:
    """Calls per command since start; `cmdstat_*` counts commands run by scripts too."""
    stats = connection.info("commandstats")
    calls: Counter[str] = Counter()
    for name, values in stats.items():
        command = name.removeprefix("cmdstat_")
        if command not in IGNORED:
            calls[command] = int(values["calls"])
    return calls


def used_memory(connection: redis.Redis) -> int:
    """`used_memory` in bytes."""
    return int(connection.info("memory")["used_memory"])


def stored_memory(connection: redis.Redis) -> int:
    """`used_memory` less the clients' buffers (`mem_clients_normal`): what the data takes.

    A client's query and output buffers grow and shrink with its traffic; they belong to the
    connection, not to what it stored.
    """
    memory = connection.info("memory")
    return int(memory["used_memory"]) - int(memory["mem_clients_normal"])


def keys_bytes(connection: redis.Redis, pattern: str) -> int:
    """Sum of MEMORY USAGE (all samples) over the keys matching `pattern`."""
    total = 0
    for key in connection.scan_iter(match=pattern, count=1000):
        total += int(cast(int, connection.memory_usage(key, samples=0)) or 0)
    return total


def server_version(connection: redis.Redis) -> str:
    """redis_version of the server."""
    return str(connection.info("server")["redis_version"])
