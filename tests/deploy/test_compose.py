"""compose.yaml: the properties SPEC §5 and the draft's quick wins ask of the stack."""

from __future__ import annotations

import ipaddress
import itertools
import re
import tomllib
from typing import Any

import pytest

from tests.deploy.conftest import COMPOSE_FILE, REPO, Service

# Service attributes of the Compose specification; anything else is a typo Compose would reject.
# fmt: off
SERVICE_KEYS = frozenset({
    "annotations", "attach", "blkio_config", "build", "cap_add", "cap_drop", "cgroup",
    "cgroup_parent", "command", "configs", "container_name", "cpu_count", "cpu_percent",
    "cpu_period", "cpu_quota", "cpu_rt_period", "cpu_rt_runtime", "cpu_shares", "cpus", "cpuset",
    "credential_spec", "depends_on", "deploy", "develop", "device_cgroup_rules", "devices", "dns",
    "dns_opt", "dns_search", "domainname", "entrypoint", "env_file", "environment", "expose",
    "extends", "external_links", "extra_hosts", "gpus", "group_add", "healthcheck", "hostname",
    "image", "init", "ipc", "isolation", "labels", "links", "logging", "mac_address", "mem_limit",
    "mem_reservation", "mem_swappiness", "memswap_limit", "network_mode", "networks",
    "oom_kill_disable", "oom_score_adj", "pid", "pids_limit", "platform", "ports", "post_start",
    "pre_stop", "privileged", "profiles", "pull_policy", "read_only", "restart", "runtime",
    "scale", "secrets", "security_opt", "shm_size", "stdin_open", "stop_grace_period",
    "stop_signal", "storage_opt", "sysctls", "tmpfs", "tty", "ulimits", "user", "userns_mode",
    "uts", "volumes", "volumes_from", "working_dir",
})
# fmt: on
TOP_LEVEL_KEYS = frozenset({"name", "services", "networks", "volumes", "configs", "secrets"})
HEALTHCHECK_KEYS = frozenset({"test", "interval", "timeout", "retries", "start_period"})
DURATION = re.compile(r"(?:\d+(?:us|ms|s|m|h))+")
PINNED_TAG = re.compile(r"v?\d+\.\d+\.\d+(?:-[a-z0-9.]+)?")
SENTINEL_SERVICES = ["redis-replica", "sentinel-1", "sentinel-2", "sentinel-3",
                     "smartqueue-sentinel"]  # fmt: skip
ALL_SERVICES = ["redis", "smartqueue", "nginx", "sidecar", "prometheus", "grafana",
                *SENTINEL_SERVICES]  # fmt: skip
SENTINELS = {f"sentinel-{n}": {"redis"} for n in (1, 2, 3)}
EXPECTED_WAITS = {"smartqueue": {"redis"}, "nginx": {"smartqueue"}, "grafana": {"prometheus"},
                  "redis-replica": {"redis"}, **SENTINELS,
                  "smartqueue-sentinel": {*SENTINELS, "redis-replica"}}  # fmt: skip


def flag_values(command: list[str]) -> dict[str, str]:
    """`--name value` pairs of a command line."""
    return {flag: value for flag, value in itertools.pairwise(command) if flag.startswith("--")}


def healthcheck_words(service: Service) -> str:
    """The health check's test as one string."""
    test = service["healthcheck"]["test"]
    return test if isinstance(test, str) else " ".join(test)


def test_compose_top_level_has_no_obsolete_version_key(compose: dict[str, Any]) -> None:
    assert "version" not in compose
    assert set(compose) <= TOP_LEVEL_KEYS


def test_compose_services_are_the_stack_its_monitoring_the_sidecar_and_sentinel_profile(
    services: dict[str, Service],
) -> None:
    assert set(services) == set(ALL_SERVICES)
    profiled = {name: service["profiles"] for name, service in services.items()
                if "profiles" in service}  # fmt: skip
    assert profiled == {"sidecar": ["gpu-host"]} | {name: ["sentinel"]
                                                    for name in SENTINEL_SERVICES}  # fmt: skip


@pytest.mark.parametrize("name", ALL_SERVICES)
def test_compose_service_keys_are_compose_spec_attributes(
    services: dict[str, Service], name: str
) -> None:
    assert set(services[name]) <= SERVICE_KEYS, set(services[name]) - SERVICE_KEYS


@pytest.mark.parametrize("name", ALL_SERVICES)
def test_compose_image_tag_is_a_pinned_version(services: dict[str, Service], name: str) -> None:
    repository, _, tag = services[name]["image"].partition(":")
    assert repository
    assert PINNED_TAG.fullmatch(tag), f"{name}: image tag {tag!r} is not a pinned x.y.z version"


def test_compose_built_image_tag_matches_package_version(services: dict[str, Service]) -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert services["smartqueue"]["build"] == {"context": ".", "dockerfile": "Dockerfile"}
    assert services["smartqueue"]["image"] == f"smartqueue:{version}"


@pytest.mark.parametrize("name", ALL_SERVICES)
def test_compose_restart_policy_is_unless_stopped(services: dict[str, Service], name: str) -> None:
    assert services[name]["restart"] == "unless-stopped"


@pytest.mark.parametrize("name", ALL_SERVICES)
def test_compose_healthcheck_present_with_timings(services: dict[str, Service], name: str) -> None:
    check = services[name]["healthcheck"]
    assert set(check) <= HEALTHCHECK_KEYS
    assert check["test"][0] in {"CMD", "CMD-SHELL"}, "a health check must run something"
    assert all(DURATION.fullmatch(check[key]) for key in ("interval", "timeout", "start_period"))
    assert isinstance(check["retries"], int)
    assert check["retries"] >= 1


@pytest.mark.parametrize(("name", "dependencies"), EXPECTED_WAITS.items())
def test_compose_depends_on_waits_for_service_healthy(
    services: dict[str, Service], name: str, dependencies: set[str]
) -> None:
    depends_on = services[name]["depends_on"]
    assert set(depends_on) == dependencies
    assert all(depends_on[dep] == {"condition": "service_healthy"} for dep in dependencies)


def test_redis_command_turns_aof_on_with_noeviction(services: dict[str, Service]) -> None:
    command = services["redis"]["command"]
    assert command[0] == "redis-server"
    assert flag_values(command) == {
        "--appendonly": "yes",
        "--appendfsync": "everysec",
        "--maxmemory-policy": "noeviction",
    }


def test_redis_data_directory_on_named_volume(
    compose: dict[str, Any], services: dict[str, Service]
) -> None:
    assert services["redis"]["volumes"] == ["redis-data:/data"]
    assert "redis-data" in compose["volumes"]


def test_redis_healthcheck_requires_pong(services: dict[str, Service]) -> None:
    assert "redis-cli ping" in healthcheck_words(services["redis"])
    assert "PONG" in healthcheck_words(services["redis"])


def test_compose_only_nginx_and_gpu_host_sidecar_publish_ports(
    services: dict[str, Service],
) -> None:
    # The sidecar runs on a GPU host, where the queue on another host must reach it.
    publishing = [name for name, service in services.items() if "ports" in service]
    assert publishing == ["nginx", "sidecar"]
    assert services["sidecar"]["ports"] == ["8090:8090"]
    assert services["smartqueue"]["expose"] == ["8091"]


def test_smartqueue_redis_url_names_redis_service(services: dict[str, Service]) -> None:
    assert services["smartqueue"]["environment"]["SMARTQUEUE_REDIS_URL"] == "redis://redis:6379/0"


def test_smartqueue_admin_token_unset_refuses_to_start(services: dict[str, Service]) -> None:
    token = services["smartqueue"]["environment"]["SMARTQUEUE_ADMIN_TOKEN"]
    # `:?` makes Compose stop with the message when the variable is unset *or empty*.
    assert re.fullmatch(r"\$\{SMARTQUEUE_ADMIN_TOKEN:\?[^}]+\}", token)


def test_smartqueue_healthcheck_hits_health_endpoint(services: dict[str, Service]) -> None:
    assert "http://localhost:8091/health" in healthcheck_words(services["smartqueue"])


def test_compose_file_without_ip_literals_names_hosts() -> None:
    candidates = re.findall(r"[0-9A-Fa-f:.]*[:.][0-9A-Fa-f:.]*", COMPOSE_FILE.read_text())
    literals = [word for word in candidates if is_ip_address(word.strip(".:"))]
    assert literals == []


def is_ip_address(word: str) -> bool:
    """True when `word` is an IPv4 or IPv6 address."""
    try:
        ipaddress.ip_address(word)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize("word", ["192.168.68.15", "127.0.0.1", "::1", "fe80::1"])
def test_ip_literal_check_with_address_detects_it(word: str) -> None:
    assert is_ip_address(word)


@pytest.mark.parametrize("word", ["7.4.9", "8080:80", "1.30.4", "0.1.0"])
def test_ip_literal_check_with_version_or_port_passes(word: str) -> None:
    assert not is_ip_address(word)


def test_smartqueue_blob_directory_on_a_named_volume(
    compose: dict[str, Any], services: dict[str, Service]
) -> None:
    smartqueue = services["smartqueue"]
    blob_dir = smartqueue["environment"]["SMARTQUEUE_BLOB_DIR"]
    assert smartqueue["volumes"] == [f"blobs:{blob_dir}"]
    assert "blobs" in compose["volumes"]
