"""The nginx service runs the committed, rendered config with the paths that config expects."""

from __future__ import annotations

import re

from tests.deploy.conftest import NGINX_CONFIG, REPO, Service

# The config's header names this prefix; the official nginx images create the directory.
NGINX_PREFIX = "/var/cache/nginx"
# The image's default command, `nginx -g 'daemon off;'`, reads this file.
NGINX_MAIN_CONFIG = "/etc/nginx/nginx.conf"


def directive_values(name: str) -> list[str]:
    """The first argument of every `name ...;` directive in the committed config."""
    return re.findall(rf"^\s*{name}\s+([^\s;]+)", NGINX_CONFIG.read_text(), flags=re.MULTILINE)


def test_nginx_mount_with_committed_config_is_main_config_read_only(
    services: dict[str, Service],
) -> None:
    source, target, mode = services["nginx"]["volumes"][0].split(":")
    assert len(services["nginx"]["volumes"]) == 1
    assert (REPO / source).resolve() == NGINX_CONFIG
    assert (target, mode) == (NGINX_MAIN_CONFIG, "ro")
    assert "command" not in services["nginx"], "the default command reads " + NGINX_MAIN_CONFIG


def test_nginx_config_runtime_paths_under_image_prefix() -> None:
    header = NGINX_CONFIG.read_text().split("\n\n", 1)[0]
    temp_paths = [
        path for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        for path in directive_values(f"{name}_temp_path")
    ]  # fmt: skip
    assert f"under the prefix {NGINX_PREFIX}" in header
    assert directive_values("pid") == [f"{NGINX_PREFIX}/nginx.pid"]
    assert len(temp_paths) == 5
    assert all(path.startswith(f"{NGINX_PREFIX}/") for path in temp_paths)


def test_nginx_config_logs_to_stdio_for_compose_logs() -> None:
    assert directive_values("error_log") == ["stderr"]
    assert directive_values("access_log") == ["/dev/stdout"]
    assert not directive_values("include"), "no file the image would have to provide"


def test_nginx_queue_upstream_is_smartqueue_service_port(services: dict[str, Service]) -> None:
    queue = re.search(r"upstream queue \{\s*server ([^;\s]+);", NGINX_CONFIG.read_text())
    assert queue is not None
    host, _, port = queue.group(1).partition(":")
    assert host in services
    assert port in services[host]["expose"]


def test_nginx_published_port_targets_config_listen_port(services: dict[str, Service]) -> None:
    (mapping,) = services["nginx"]["ports"]
    host_port, _, container_port = mapping.partition(":")
    assert host_port.isdigit()
    assert directive_values("listen") == [container_port]


def test_nginx_healthcheck_from_inside_needs_no_gpu(services: dict[str, Service]) -> None:
    test = services["nginx"]["healthcheck"]["test"]
    assert test[:2] == ["CMD", "curl"], "curl ships in the nginx alpine images"
    assert "--fail" not in test, "`/` answers Nginx's own 404: any answer means it serves"
    assert test[-1] == "http://localhost/"
