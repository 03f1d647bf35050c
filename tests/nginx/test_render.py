"""`render_nginx_config`: what the rendered text contains, and the committed production file."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from smartqueue.config import FleetConfig, load_fleet
from smartqueue.nginx import (
    NginxOptions,
    NginxRenderError,
    register,
    render_nginx_config,
    upstream_names,
)
from tests.nginx.fleets import fleet_of, gpu

REPO = Path(__file__).resolve().parents[2]
PRODUCTION_FLEET = REPO / "deploy" / "fleet.yaml"
COMMITTED_CONFIG = REPO / "deploy" / "nginx" / "smartqueue.conf"
PRODUCTION_ARGS = [
    "--fleet", "deploy/fleet.yaml", "--listen", "80", "--queue-url", "http://smartqueue:8091",
    "--prefix", "/var/cache/nginx", "--log-to-stdio", "--out", "deploy/nginx/smartqueue.conf",
]  # fmt: skip
RERENDER = "smartqueue nginx render " + " ".join(PRODUCTION_ARGS)


def production_options() -> NginxOptions:
    """The options PRODUCTION_ARGS stand for."""
    return NginxOptions(
        listen="80",
        queue_url="http://smartqueue:8091",
        prefix="/var/cache/nginx",
        log_to_stdio=True,
    )


def options(**overrides: object) -> NginxOptions:
    """Options for unit tests, with overrides."""
    return NginxOptions.model_validate({"prefix": "/srv/nginx", **overrides})


def block(config: str, head: str) -> str:
    """The first `head ... { ... }` block of `config`, nested blocks included."""
    start = config.index(head)
    depth, index = 0, config.index("{", start) - 1
    while True:
        index += 1
        depth += {"{": 1, "}": -1}.get(config[index], 0)
        if depth == 0 and config[index] == "}":
            return config[start : index + 1]


def entries(map_block: str) -> dict[str, str]:
    """The `key value;` lines of a map block, quotes removed."""
    pairs = re.findall(r'^\s+"?([^"\s]+)"? "?([^"\s]+)"?;$', map_block, re.MULTILINE)
    return dict(pairs)


@pytest.fixture
def production() -> FleetConfig:
    """deploy/fleet.yaml."""
    return load_fleet(PRODUCTION_FLEET)


def test_upstream_per_route_lists_preferred_first_then_backups(production: FleetConfig) -> None:
    config = render_nginx_config(production, options())
    heavy = block(config, "upstream route-heavy")
    assert re.findall(r"server (\S+) .*?(backup)?;  # (\S+)", heavy) == [
        ("llmgpu:8080", "", "llmgpu"),
        ("amdpve:8080", "backup", "amdpve"),
    ]
    default = block(config, "upstream route-default")
    assert [line.split("# ")[1] for line in default.splitlines() if "server " in line] == [
        "amdpve",
        "llmgpu",
        "ocu_llm",
    ]
    assert "server ocu-llm:8080 max_fails=3 fail_timeout=30s backup;" in default
    assert "keepalive 16;" in default


def test_every_gpu_server_line_carries_max_fails_and_fail_timeout(
    production: FleetConfig,
) -> None:
    config = render_nginx_config(production, options(max_fails=5, fail_timeout_s=7))
    gpu_servers = [line for line in config.splitlines() if re.search(r"server \S+:8080", line)]
    assert len(gpu_servers) == sum(len(gpus) for gpus in production.routes.values())
    assert all("max_fails=5 fail_timeout=7s" in line for line in gpu_servers)


def test_route_map_sends_each_header_value_to_its_upstream(production: FleetConfig) -> None:
    route_map = block(render_nginx_config(production, options()), "map $http_x_syslog_model")
    assert entries(route_map) == {
        "default": "route-default",
        "standard": "route-standard",
        "heavy": "route-heavy",
        "qwen3.5-27B": "route-qwen3-5-27b",
        "qwen3.6-27B-code": "route-qwen3-6-27b-code",
        "light": "route-light",
        "gemma-4": "route-gemma-4",
        "gemma-4-E4B": "route-gemma-4-e4b",
    }


def test_route_name_map_resolves_unknown_header_to_default_route(
    production: FleetConfig,
) -> None:
    route_map = block(
        render_nginx_config(production, options()), "map $http_x_syslog_model $sq_route"
    )
    assert entries(route_map) == {route: route for route in production.route_names}


def test_routes_differing_only_in_case_are_refused() -> None:
    fleet = fleet_of({"a": "http://a:1"}, {"default": ["a"], "Heavy": ["a"], "heavy": ["a"]})
    with pytest.raises(NginxRenderError, match="without case"):
        render_nginx_config(fleet, options())


def test_upstream_names_clashing_after_slugging_get_suffixes() -> None:
    fleet = fleet_of(
        {"a": "http://a:1"}, {"default": ["a"], "Big.Model": ["a"], "big_model": ["a"]}
    )
    assert upstream_names(fleet) == {
        "default": "route-default",
        "Big.Model": "route-big-model",
        "big_model": "route-big-model-2",
    }


def test_route_name_map_keyword_is_escaped() -> None:
    fleet = fleet_of({"a": "http://a:1"}, {"default": ["a"], "include": ["a"]})
    config = render_nginx_config(fleet, options())
    assert '"\\include" route-include;' in config
    assert '"\\include" "include";' in config


@pytest.mark.parametrize("route", ["has space", 'quo"te', "~regex", "semi;colon"])
def test_route_name_nginx_cannot_express_is_refused(route: str) -> None:
    fleet = fleet_of({"a": "http://a:1"}, {"default": ["a"], route: ["a"]})
    with pytest.raises(NginxRenderError, match="routes"):
        render_nginx_config(fleet, options())


@pytest.mark.parametrize("url", ["https://a:8443", "http://a:8080/llama", "http://user@a:8080"])
def test_gpu_url_nginx_cannot_proxy_is_refused(url: str) -> None:
    fleet = FleetConfig(gpus=[gpu("a", url)], routes={"default": ["a"]})
    with pytest.raises(NginxRenderError, match=r"gpus\.a\.url"):
        render_nginx_config(fleet, options())


def test_ipv6_gpu_host_is_bracketed() -> None:
    fleet = FleetConfig(gpus=[gpu("a", "http://[::1]:8080")], routes={"default": ["a"]})
    assert "server [::1]:8080 " in render_nginx_config(fleet, options())


def test_fallback_location_passes_credential_strips_cookies_keeps_route_headers(
    production: FleetConfig,
) -> None:
    fallback = block(render_nginx_config(production, options()), "location @queue_fallback")
    assert "proxy_pass http://queue;" in fallback
    assert "Authorization" not in fallback.replace("# Authorization", "")  # passed as sent
    assert 'proxy_set_header Cookie "";' in fallback
    assert "proxy_set_header X-Syslog-Model $sq_route;" in fallback
    assert "proxy_set_header X-Syslog-Priority $http_x_syslog_priority;" in fallback
    assert "proxy_read_timeout 960s;" in fallback  # longer than the queue's own hold
    assert "proxy_buffering off;" in fallback


def test_queue_upstream_uses_queue_url_host_and_port(production: FleetConfig) -> None:
    config = render_nginx_config(production, options(queue_url="http://smartqueue:8091"))
    assert "server smartqueue:8091;" in block(config, "upstream queue")


def test_completion_locations_fall_back_only_on_upstream_failures(
    production: FleetConfig,
) -> None:
    config = render_nginx_config(production, options())
    completions = block(config, "location ~ ^/v1/(?:chat/)?completions$")
    assert "proxy_next_upstream error timeout http_502 http_503;" in completions
    assert not re.search(r"^\s*proxy_next_upstream .*non_idempotent", config, re.MULTILINE)
    assert "proxy_intercept_errors on;" in completions
    assert "error_page 502 503 504 = @queue_fallback;" in completions
    assert "error_page" not in block(config, "location /v1/")


def test_streaming_directives_are_set(production: FleetConfig) -> None:
    config = render_nginx_config(production, options(read_timeout_s=1200))
    for directive in (
        "proxy_buffering off;",
        "proxy_http_version 1.1;",
        'proxy_set_header Connection "";',
        "proxy_request_buffering on;",
        "proxy_read_timeout 1200s;",
    ):
        assert directive in config


def test_limits_are_rendered_from_options(production: FleetConfig) -> None:
    config = render_nginx_config(
        production, options(rate_per_s=3, burst=7, max_body_size="256k", connect_timeout_s=4)
    )
    for directive in (
        "limit_req_zone $binary_remote_addr zone=sq_per_ip:10m rate=3r/s;",
        "limit_req zone=sq_per_ip burst=7 nodelay;",
        "limit_req_status 429;",
        "client_max_body_size 256k;",
        "client_body_buffer_size 256k;",
        "client_header_timeout 10s;",
        "client_body_timeout 10s;",
        "send_timeout 60s;",
        "proxy_connect_timeout 4s;",
    ):
        assert directive in config


def test_runtime_paths_are_all_under_prefix(production: FleetConfig) -> None:
    config = render_nginx_config(production, options(prefix="/run/sq/"))
    paths = re.findall(r"^\s*(?:pid|error_log|access_log|\w+_temp_path) (\S+)", config, re.M)
    assert len(paths) == 8
    assert all(path.startswith("/run/sq/") for path in paths)


def test_log_to_stdio_sends_logs_to_standard_streams(production: FleetConfig) -> None:
    config = render_nginx_config(production, options(log_to_stdio=True))
    assert "error_log stderr warn;" in config
    assert "access_log /dev/stdout sq_upstream;" in config


@pytest.mark.parametrize(
    ("field", "value"),
    [("listen", "eighty"), ("listen", "70000"), ("prefix", "relative/dir"),
     ("prefix", "/has space"), ("max_body_size", "1g"), ("queue_url", "https://q:1")],
)  # fmt: skip
def test_invalid_option_is_refused(field: str, value: str) -> None:
    with pytest.raises(ValueError, match=field):
        options(**{field: value})


def test_render_same_inputs_gives_same_bytes(production: FleetConfig) -> None:
    assert render_nginx_config(production, options()) == render_nginx_config(
        load_fleet(PRODUCTION_FLEET), options()
    )


def classify(config: str, connect: str, header: str, status: str) -> str:
    """Evaluate the $sq_gpu_outcome map of `config` the way nginx does (first regex wins)."""
    outcome_map = block(config, 'map "$upstream_connect_time')
    source = f"{connect}|{header}|{status}"
    for pattern, value in re.findall(r'^\s+"~(.*)" (\w+);$', outcome_map, re.MULTILINE):
        if re.search(pattern.replace("\\\\", "\\"), source):
            return str(value)
    return str(re.findall(r"default (\w+);", outcome_map)[0])


@pytest.mark.parametrize(
    ("connect", "header", "status", "outcome"),
    [
        ("-", "-", "502", "queue"),  # refused
        ("-", "-", "504", "queue"),  # connect timeout
        ("-, -", "-, -", "502, 504", "queue"),  # refused, then connect timeout on the backup
        ("0.001", "0.002", "503", "queue"),  # the GPU answered 503 itself
        ("-, 0.001", "-, 0.002", "502, 502", "queue"),  # refused, then the backup answered 502
        ("0.001", "-", "504", "timeout"),  # accepted, no status line before the read timeout
        ("-, 0.000", "-, -", "502, 504", "timeout"),  # refused, then the backup stalls
        ("0.001", "1.500", "504", "timeout"),  # the GPU answered 504 itself
        ("0.001", "-", "502", "error"),  # accepted, then the connection broke
        ("0.010, 0.001", "-, -", "504, 502", "error"),  # the last attempt decides
    ],
)
def test_gpu_outcome_map_sends_only_unaccepted_requests_to_queue(
    production: FleetConfig, connect: str, header: str, status: str, outcome: str
) -> None:
    assert classify(render_nginx_config(production, options()), connect, header, status) == outcome


def test_committed_config_matches_fresh_render_of_production_fleet(
    production: FleetConfig,
) -> None:
    fresh = render_nginx_config(production, production_options())
    assert COMMITTED_CONFIG.read_text(encoding="utf-8") == fresh, (
        f"deploy/nginx/smartqueue.conf is stale; from the repository root run: {RERENDER}"
    )


def test_cli_render_writes_the_committed_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "deploy" / "nginx").mkdir(parents=True)
    (tmp_path / "deploy" / "fleet.yaml").write_bytes(PRODUCTION_FLEET.read_bytes())
    monkeypatch.chdir(tmp_path)
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["nginx", "render", *PRODUCTION_ARGS])
    assert result.exit_code == 0, result.output
    written = tmp_path / "deploy" / "nginx" / "smartqueue.conf"
    assert written.read_text(encoding="utf-8") == COMMITTED_CONFIG.read_text(encoding="utf-8")


def test_cli_render_without_prefix_uses_output_directory(tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)
    out = tmp_path / "conf" / "nginx.conf"
    args = ["nginx", "render", "--fleet", str(PRODUCTION_FLEET), "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"pid {out.parent}/nginx.pid;" in out.read_text(encoding="utf-8")


def test_cli_render_bad_fleet_exits_with_message(tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)
    args = ["nginx", "render", "--fleet", str(tmp_path / "none.yaml"), "--out", "x.conf"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "cannot read fleet file" in result.output


def loopback_copy(fleet: FleetConfig) -> FleetConfig:
    """`fleet` with every GPU host replaced by localhost (the ports stay)."""
    gpus = [
        spec.model_copy(update={"url": re.sub(r"//[^:/]+", "//localhost", spec.url)})
        for spec in fleet.gpus
    ]
    return fleet.model_copy(update={"gpus": gpus})


def nginx_test(binary: str, config: Path, *, user: str | None = None) -> None:
    """Run `nginx -t` on `config` (as `user` through runuser when given); fail on a refusal."""
    command = [binary, "-t", "-q", "-e", "stderr", "-c", str(config)]
    if user is not None:
        command = ["runuser", "-u", user, "--", *command]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr


def test_production_config_with_loopback_hosts_passes_nginx_t(
    nginx_binary: str, production: FleetConfig, tmp_path: Path
) -> None:
    """nginx -t accepts deploy/fleet.yaml rendered as committed, GPU and queue hosts as localhost.

    nginx -t resolves every upstream host and amdpve, llmgpu, ocu-llm and smartqueue resolve only
    on the production network; so this checks every directive, map, upstream and location of the
    committed file, but not its host names (nor its /var/cache/nginx prefix: a temp dir here).
    """
    loopback_options = production_options().model_copy(
        update={"queue_url": "http://localhost:8091", "prefix": str(tmp_path)}
    )
    config = tmp_path / "nginx.conf"
    config.write_text(render_nginx_config(loopback_copy(production), loopback_options))
    nginx_test(nginx_binary, config)


def test_rendered_config_passes_nginx_t_as_unprivileged_user(
    nginx_binary: str, production: FleetConfig
) -> None:
    """As root this runs nginx -t as `nobody` (runuser), otherwise as the current user."""
    user = "nobody" if os.geteuid() == 0 else None
    with tempfile.TemporaryDirectory(prefix="sq-nginx-") as directory:
        if user is not None:
            shutil.chown(directory, user=user)
        config = Path(directory) / "nginx.conf"
        unprivileged = options(prefix=directory, listen="127.0.0.1:18480")
        config.write_text(render_nginx_config(loopback_copy(production), unprivileged))
        nginx_test(nginx_binary, config, user=user)


def test_route_names_that_are_map_keywords_pass_nginx_t(nginx_binary: str, tmp_path: Path) -> None:
    routes = {name: ["a"] for name in ("default", "include", "hostnames", "volatile", "a:b+c@d")}
    fleet = fleet_of({"a": "http://localhost:1"}, routes)
    config = tmp_path / "nginx.conf"
    loopback = options(prefix=str(tmp_path), queue_url="http://localhost:8091")
    config.write_text(render_nginx_config(fleet, loopback))
    nginx_test(nginx_binary, config)


def test_files_and_batches_location_sends_uploads_to_the_queue(production: FleetConfig) -> None:
    location = block(render_nginx_config(production, options()),
                     "location ~ ^/v1/(?:files|batches)(?:/|$)")  # fmt: skip
    assert "proxy_pass http://queue;" in location
    assert "client_max_body_size 200m;" in location
    assert "proxy_request_buffering off;" in location
