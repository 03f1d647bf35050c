"""Redis run the ways production runs it, as real processes on loopback in a temp dir.

    with sentinel_deployment(tmp_path) as ha:        # primary, replica, three sentinels
        url = ha.url                                  # redis+sentinel://127.0.0.1:P1,.../mymaster/0
        ha.primary.kill(); ha.wait_promoted()

    with redis_cluster(tmp_path) as cluster:          # three primaries, all 16384 slots covered
        url = cluster.url                             # redis+cluster://127.0.0.1:P1,.../

Sentinels use short timeouts (down after 2 s, failover timeout 3 s) so a failover takes a few
seconds. (Down after 1 s was too short for a loaded 2-core machine: a promoted primary that
stalled for a second was failed over again.) Every process is killed when the block ends.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import redis

from tests.support.binaries import require_binary
from tests.support.ports import free_port, wait_for_port
from tests.support.redis_server import RedisServer

SERVICE = "mymaster"
DOWN_AFTER_MS = 2000
FAILOVER_TIMEOUT_MS = 3000


@dataclass
class SentinelDeployment:
    """A primary, its replica and three sentinels watching them."""

    primary: RedisServer
    replica: RedisServer
    sentinel_ports: list[int]

    @property
    def url(self) -> str:
        """The smartqueue URL naming the sentinels."""
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def primary_port(self) -> int | None:
        """The port the first sentinel that answers names as primary."""
        named = (self._named_by(port) for port in self.sentinel_ports)
        return next((port for port in named if port is not None), None)

    def wait_promoted(self, *, away_from: int, timeout_s: float = 90.0) -> float:
        """Block until the sentinels name a primary other than `away_from`; seconds it took."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            port = self.primary_port()
            if port is not None and port != away_from:
                return time.monotonic() - started
            time.sleep(0.05)
        raise TimeoutError(f"no sentinel promoted a replica within {timeout_s} s")

    def wait_settled(self, port: int, *, timeout_s: float = 90.0) -> None:
        """Block until every sentinel names `port` as primary, then for one down-after period:
        a sentinel that still judges the new primary down then finds no replica to promote.

        Restart a killed primary only after this: it comes back empty, and were it up while
        the sentinels failed over again, they could promote it and drop every write.
        """
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            named = {self._named_by(sentinel) for sentinel in self.sentinel_ports}
            if named == {port}:
                time.sleep(DOWN_AFTER_MS / 1000)
                return
            time.sleep(0.05)
        raise TimeoutError(f"the sentinels did not all name {port} within {timeout_s} s")

    def _named_by(self, sentinel_port: int) -> int | None:
        """The primary port one sentinel names (None when it does not answer)."""
        try:
            with redis.Redis(port=sentinel_port, socket_timeout=0.5) as sentinel:
                address = sentinel.sentinel_get_master_addr_by_name(SERVICE)
        except redis.RedisError:
            return None
        return int(address[1]) if address else None

    def wait_replicating(self, server: RedisServer, *, timeout_s: float = 90.0) -> None:
        """Block until `server` is a replica with its link to the primary up."""
        wait_replicating(server, timeout_s=timeout_s)


def wait_replicating(server: RedisServer, *, timeout_s: float = 90.0) -> None:
    """Block until `server` is a replica with its link to the primary up (its first full sync
    done: on a busy machine that can take longer than a `WAIT` timeout of a few seconds)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with redis.Redis(port=server.port, socket_timeout=0.5) as client:
            info = client.info("replication")
        if info.get("role") == "slave" and info.get("master_link_status") == "up":
            return
        time.sleep(0.05)
    raise TimeoutError(f"redis on {server.port} is not a synced replica after {timeout_s} s")


def _sentinel_config(workdir: Path, port: int, primary_port: int) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "sentinel.conf"  # sentinels rewrite their file: one each, writable
    config.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {workdir}\n"
        f"sentinel monitor {SERVICE} 127.0.0.1 {primary_port} 2\n"
        f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
        f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}\n"
        f"sentinel parallel-syncs {SERVICE} 1\n",
        encoding="utf-8",
    )
    return config


@contextmanager
def _process(args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        process.kill()
        process.wait(timeout=10)


@contextmanager
def _server(server: RedisServer) -> Iterator[RedisServer]:
    server.workdir.mkdir(parents=True, exist_ok=True)
    server.start()
    try:
        yield server
    finally:
        server.thaw()
        server.kill()


@contextmanager
def sentinel_deployment(
    workdir: Path, *, primary_args: tuple[str, ...] = ()
) -> Iterator[SentinelDeployment]:
    """A primary (with `primary_args`), a synced replica and three sentinels."""
    binary = require_binary("redis-server")
    with ExitStack() as stack:
        primary = stack.enter_context(_server(RedisServer(workdir / "primary",
                                                          extra_args=primary_args)))  # fmt: skip
        replica = RedisServer(workdir / "replica", extra_args=primary_args)
        replica.extra_args += ["--replicaof", "127.0.0.1", str(primary.port)]
        stack.enter_context(_server(replica))
        ports = [free_port() for _ in range(3)]
        for index, port in enumerate(ports):
            home = workdir / f"sentinel{index}"
            config = _sentinel_config(home, port, primary.port)
            stack.enter_context(_process([binary, str(config), "--sentinel"], home / "log"))
        for port in ports:
            wait_for_port(port)
        deployment = SentinelDeployment(primary, replica, ports)
        deployment.wait_replicating(replica)
        _wait_sentinels_see_replica(deployment)
        yield deployment


def _wait_sentinels_see_replica(deployment: SentinelDeployment, timeout_s: float = 30.0) -> None:
    """A sentinel can only promote a replica it has discovered (through INFO of the primary)."""
    deadline = time.monotonic() + timeout_s
    for port in deployment.sentinel_ports:
        with redis.Redis(port=port, socket_timeout=0.5, decode_responses=True) as sentinel:
            while not sentinel.sentinel_slaves(SERVICE) or not _peers_known(sentinel):
                if time.monotonic() > deadline:
                    raise TimeoutError("sentinels did not discover the replica and each other")
                time.sleep(0.1)


def _peers_known(sentinel: redis.Redis) -> bool:
    peers = sentinel.sentinel_sentinels(SERVICE)
    return isinstance(peers, list) and len(peers) >= 2


@dataclass
class RedisClusterProcesses:
    """Three cluster-enabled primaries sharing the 16384 slots."""

    nodes: list[RedisServer]

    @property
    def url(self) -> str:
        """The smartqueue URL naming every node."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes) + "/"

    def node_of_slot(self, slot: int) -> RedisServer:
        """The node serving `slot` now."""
        with redis.Redis(port=self.nodes[0].port, decode_responses=True) as client:
            for start, end, (_, port, *_rest), *_replicas in client.execute_command(
                "CLUSTER", "SLOTS"
            ):
                if start <= slot <= end:
                    return next(node for node in self.nodes if node.port == int(port))
        raise LookupError(f"no node serves slot {slot}")


@contextmanager
def redis_cluster(workdir: Path) -> Iterator[RedisClusterProcesses]:
    """Three primaries on loopback, joined with `redis-cli --cluster create`."""
    cli = require_binary("redis-cli")
    with ExitStack() as stack:
        nodes = []
        for index in range(3):
            home = workdir / f"node{index}"
            node = RedisServer(home, extra_args=["--cluster-enabled", "yes",
                                                 "--cluster-config-file", str(home / "nodes.conf"),
                                                 "--cluster-port", str(free_port()),
                                                 "--cluster-node-timeout", "2000"])  # fmt: skip
            nodes.append(stack.enter_context(_server(node)))
        addresses = [f"127.0.0.1:{node.port}" for node in nodes]
        created = subprocess.run([cli, "--cluster", "create", *addresses, "--cluster-yes"],
                                 capture_output=True, timeout=60, text=True)  # fmt: skip
        assert created.returncode == 0, created.stdout + created.stderr
        cluster = RedisClusterProcesses(nodes)
        _wait_cluster_ok(cluster)
        yield cluster


def _wait_cluster_ok(cluster: RedisClusterProcesses, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    for node in cluster.nodes:
        with redis.Redis(port=node.port, decode_responses=True) as client:
            while "cluster_state:ok" not in client.execute_command("CLUSTER", "INFO"):
                if time.monotonic() > deadline:
                    raise TimeoutError("the cluster did not reach cluster_state:ok")
                time.sleep(0.1)


def migrate_slot(cluster: RedisClusterProcesses, slot: int, target: RedisServer) -> int:
    """Move `slot` and its keys to `target` (SETSLOT + MIGRATE, as reshard does); keys moved."""
    source = cluster.node_of_slot(slot)
    with (redis.Redis(port=source.port, decode_responses=True) as src,
          redis.Redis(port=target.port, decode_responses=True) as dst):  # fmt: skip
        source_id, target_id = (
            src.execute_command("CLUSTER", "MYID"),
            dst.execute_command("CLUSTER", "MYID"),
        )
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        moved = 0
        while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
            src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
            moved += len(keys)
        for node in cluster.nodes:
            with redis.Redis(port=node.port) as client:
                client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
    return moved
