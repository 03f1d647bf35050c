"""compose.yaml's `sentinel` profile: a replica, three sentinels agreeing on one primary, and a
smartqueue replica that reaches Redis through them and waits for a replica before each 202."""

from __future__ import annotations

import re

from smartqueue.redis_url import RedisMode, parse_redis_url
from tests.deploy.conftest import REPO, Service
from tests.deploy.test_compose import flag_values

SENTINEL_CONF = REPO / "deploy" / "redis" / "sentinel.conf"


def _monitor() -> tuple[str, str, str, int]:
    found = re.search(r"^sentinel monitor (\S+) (\S+) (\d+) (\d+)$", SENTINEL_CONF.read_text(),
                      re.MULTILINE)  # fmt: skip
    assert found, "sentinel.conf monitors nothing"
    name, host, port, quorum = found.groups()
    return name, host, port, int(quorum)


def test_sentinel_conf_monitors_the_redis_service_with_a_majority_quorum() -> None:
    assert _monitor() == ("mymaster", "redis", "6379", 2)
    assert "sentinel resolve-hostnames yes" in SENTINEL_CONF.read_text()


def test_redis_replica_replicates_the_redis_service_with_aof(
    services: dict[str, Service],
) -> None:
    command = services["redis-replica"]["command"]
    assert command[command.index("--replicaof") + 1 :][:2] == ["redis", "6379"]
    assert flag_values(command)["--appendonly"] == "yes"


def test_each_sentinel_keeps_its_rewritable_config_on_its_own_volume(
    services: dict[str, Service],
) -> None:
    volumes = [services[f"sentinel-{n}"]["volumes"] for n in (1, 2, 3)]
    assert all("./deploy/redis/sentinel.conf:/etc/redis/sentinel.conf:ro" in v for v in volumes)
    assert len({v[1] for v in volumes}) == 3
    assert all("--sentinel" in services[f"sentinel-{n}"]["command"][-1] for n in (1, 2, 3))


def test_smartqueue_sentinel_names_the_three_sentinels_and_waits_for_one_replica(
    services: dict[str, Service],
) -> None:
    environment = services["smartqueue-sentinel"]["environment"]
    target = parse_redis_url(environment["SMARTQUEUE_REDIS_URL"])

    assert target.mode is RedisMode.SENTINEL
    assert target.nodes == tuple((f"sentinel-{n}", 26379) for n in (1, 2, 3))
    assert target.service == _monitor()[0]
    assert environment["SMARTQUEUE_REDIS_MIN_REPLICAS"] == "1"
    assert services["smartqueue-sentinel"]["image"] == services["smartqueue"]["image"]


def test_smartqueue_sentinel_shares_the_batch_files_volume(services: dict[str, Service]) -> None:
    ha, main = services["smartqueue-sentinel"], services["smartqueue"]
    assert ha["volumes"] == main["volumes"]
    assert ha["environment"]["SMARTQUEUE_BLOB_DIR"] == main["environment"]["SMARTQUEUE_BLOB_DIR"]
