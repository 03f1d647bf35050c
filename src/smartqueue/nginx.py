"""Render the public Nginx front from the fleet file (`smartqueue nginx render`).

The rendered config routes OpenAI requests to GPUs by `X-Syslog-Model` and hands a request to the
queue only when no GPU accepted it; comments inside the rendered file explain each decision.
Rendering is a pure function of the fleet and the options, so the same input gives the same bytes.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from smartqueue.config import (
    DEFAULT_ROUTE,
    FleetConfig,
    FleetError,
    GpuConfig,
    describe_validation_error,
    load_fleet,
)

QUEUE_UPSTREAM = "queue"
FALLBACK_LOCATION = "@queue_fallback"
ROUTE_VARIABLE = "$sq_upstream"
ROUTE_NAME_VARIABLE = "$sq_route"
OUTCOME_VARIABLE = "$sq_gpu_outcome"
ROUTED_VARIABLE = "$sq_routed_to"  # set per location, still set in @queue_fallback

_ROUTE_KEY = re.compile(r"^[A-Za-z0-9._:+@-]+$")
_MAP_KEYWORDS = frozenset({"default", "hostnames", "include", "volatile"})
_LISTEN = re.compile(r"^(?:(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):)?(?P<port>[0-9]{1,5})$")
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9._/+-]*$")
_SIZE = re.compile(r"^[1-9][0-9]*[kKmM]?$")
_INDENT = "    "


class NginxRenderError(ValueError):
    """The fleet or the options cannot be expressed as an Nginx config; one line says why."""


class NginxOptions(BaseModel):
    """Everything `render_nginx_config` needs besides the fleet; durations in whole seconds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    listen: str = Field(default="80", description="PORT or ADDRESS:PORT of the public server")
    queue_url: str = Field(default="http://127.0.0.1:8091", description="smartqueue base URL")
    prefix: str = Field(description="Absolute directory for the pid file, temp dirs and logs")
    log_to_stdio: bool = Field(default=False, description="error log to stderr, access to stdout")
    worker_processes: str = Field(default="auto", pattern=r"^(?:auto|[1-9][0-9]{0,2})$")
    worker_connections: int = Field(default=1024, ge=64)
    rate_per_s: int = Field(default=10, ge=1, description="per-IP request rate before 429")
    burst: int = Field(default=20, ge=0, description="requests above the rate let through at once")
    max_body_size: str = Field(default="1m", description="client_max_body_size; larger -> 413")
    max_file_size: str = Field(
        default="200m",
        description="client_max_body_size of /v1/files uploads (SMARTQUEUE_MAX_FILE_BYTES)",
    )
    connect_timeout_s: int = Field(default=2, ge=1)
    read_timeout_s: int = Field(default=600, ge=1, description="GPU: longest silence while reading")
    queue_read_timeout_s: int = Field(
        default=960, ge=1, description="longer than the queue's own hold (SMARTQUEUE_HOLD_S, 900)"
    )
    client_header_timeout_s: int = Field(default=10, ge=1)
    client_body_timeout_s: int = Field(default=10, ge=1)
    send_timeout_s: int = Field(default=60, ge=1)
    max_fails: int = Field(default=3, ge=1)
    fail_timeout_s: int = Field(default=30, ge=1)
    upstream_keepalive: int = Field(default=16, ge=1, description="idle connections per upstream")

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        match = _LISTEN.match(value)
        if not match or not 1 <= int(match["port"]) <= 65535:
            raise ValueError(f"listen must be PORT or ADDRESS:PORT, got {value!r}")
        return value

    @field_validator("prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        if not _SAFE_PATH.match(value):
            raise ValueError(f"prefix must be an absolute path of [A-Za-z0-9._/+-], got {value!r}")
        return value.rstrip("/") or "/"

    @field_validator("max_body_size", "max_file_size")
    @classmethod
    def _check_size(cls, value: str) -> str:
        if not _SIZE.match(value):
            raise ValueError(f"max_body_size must look like 512k, 1m or 1048576, got {value!r}")
        return value.lower()

    @field_validator("queue_url")
    @classmethod
    def _check_queue_url(cls, value: str) -> str:
        upstream_address(value, what="queue_url")
        return value


def upstream_address(url: str, *, what: str) -> str:
    """The `host:port` Nginx connects to for a plain-HTTP base URL without a path."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise NginxRenderError(f"{what}: Nginx proxies plain http:// base URLs only, got {url!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise NginxRenderError(f"{what}: must be a bare http://host:port URL, got {url!r}")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{parts.port or 80}"


def upstream_names(fleet: FleetConfig) -> dict[str, str]:
    """Route -> upstream name, made of [a-z0-9-] and unique (`route-<slug>`, `-2` on clash)."""
    names: dict[str, str] = {}
    for route in fleet.route_names:
        base = "route-" + (re.sub(r"[^a-z0-9]+", "-", route.lower()).strip("-") or "x")
        name, counter = base, 2
        while name in names.values():
            name, counter = f"{base}-{counter}", counter + 1
        names[route] = name
    return names


def _block(head: str, body: list[str]) -> list[str]:
    indented = [f"{_INDENT}{line}" if line else "" for line in body]
    return [f"{head} {{", *indented, "}"]


def _comment(text: str) -> list[str]:
    return [f"# {line}".rstrip() for line in text.strip("\n").splitlines()]


def _json_error(message: str, kind: str) -> str:
    body = json.dumps({"error": {"message": message, "type": kind, "param": None, "code": kind}})
    return f"'{body}\\n'"


def _header(options: NginxOptions) -> list[str]:
    return _comment(
        f"""
smartqueue public front: OpenAI requests go to the GPUs of their X-Syslog-Model route and reach
the queue only when no GPU accepted them. Rendered by `smartqueue nginx render` from the fleet
file: do not edit, re-render (see deploy/nginx/README.md).
Runtime files (pid, temp dirs{"" if options.log_to_stdio else ", logs"}) live under the prefix \
{options.prefix}; every path is absolute,
so `nginx -c FILE` and `nginx -p {options.prefix} -c FILE` both work, as root or as a user
who can write the prefix.
"""
    )


def _main_context(options: NginxOptions) -> list[str]:
    error_log = "stderr" if options.log_to_stdio else f"{options.prefix}/error.log"
    return [
        f"worker_processes {options.worker_processes};",
        f"pid {options.prefix}/nginx.pid;",
        f"error_log {error_log} warn;",
        "",
        *_block("events", [f"worker_connections {options.worker_connections};"]),
    ]


def _http_basics(options: NginxOptions) -> list[str]:
    access_log = "/dev/stdout" if options.log_to_stdio else f"{options.prefix}/access.log"
    temp_paths = [
        f"{kind}_temp_path {options.prefix}/{kind}_temp;"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    ]
    return [
        "server_tokens off;",
        "default_type application/octet-stream;",
        *temp_paths,
        'log_format sq_upstream \'$remote_addr [$time_local] "$request" $status '
        "$body_bytes_sent rt=$request_time route=$sq_routed_to upstream=$upstream_addr '",
        "                       'upstream_status=$upstream_status connect=$upstream_connect_time "
        "header=$upstream_header_time';",
        f"access_log {access_log} sq_upstream;",
    ]


def _client_limits(options: NginxOptions) -> list[str]:
    return [
        *_comment(
            """
Slow clients: Nginx is the defence (uvicorn has no timeout for slow request headers).
Bodies above client_max_body_size get 413. The body is read completely before proxying
(proxy_request_buffering on): a GPU gets the request only once it is whole, and the body is
still there when @queue_fallback re-sends it (in memory up to client_body_buffer_size, then in
a temp file under the prefix). Unbuffered bodies could not be re-sent to a backup or the queue.
"""
        ),
        f"client_header_timeout {options.client_header_timeout_s}s;",
        f"client_body_timeout {options.client_body_timeout_s}s;",
        f"send_timeout {options.send_timeout_s}s;",
        "reset_timedout_connection on;",
        f"client_max_body_size {options.max_body_size};",
        f"client_body_buffer_size {_body_buffer_size(options.max_body_size)};",
        "",
        "# Per client IP; past rate + burst the answer is 429 (the OpenAI SDK retries those).",
        f"limit_req_zone $binary_remote_addr zone=sq_per_ip:10m rate={options.rate_per_s}r/s;",
        "limit_req_status 429;",
        "limit_req_log_level warn;",
    ]


def _body_buffer_size(max_body_size: str) -> str:
    units = {"k": 1024, "m": 1024 * 1024}
    size = int(max_body_size.rstrip("km")) * units.get(max_body_size[-1], 1)
    return max_body_size if size <= units["m"] else "1m"


def _map_key(route: str) -> str:
    if not _ROUTE_KEY.match(route):
        raise NginxRenderError(
            f"routes.{route}: only [A-Za-z0-9._:+@-] route names can be rendered into the map"
        )
    return f'"\\{route}"' if route in _MAP_KEYWORDS else f'"{route}"'


def _header_map(fleet: FleetConfig, variable: str, values: dict[str, str]) -> list[str]:
    entries = [f"default {values[DEFAULT_ROUTE]};"]
    entries += [
        f"{_map_key(route)} {values[route]};"
        for route in fleet.route_names
        if route != DEFAULT_ROUTE
    ]
    return _block(f"map $http_x_syslog_model {variable}", entries)


def _check_case_clashes(routes: list[str]) -> None:
    seen: dict[str, str] = {}
    for route in routes:
        if (other := seen.setdefault(route.lower(), route)) != route:
            raise NginxRenderError(
                f"routes.{route}: Nginx matches X-Syslog-Model without case, like {other!r}"
            )


def _route_maps(fleet: FleetConfig, names: dict[str, str]) -> list[str]:
    _check_case_clashes(fleet.route_names)
    routes = {route: f'"{route}"' for route in fleet.route_names}
    return [
        *_comment(
            """
X-Syslog-Model (matched without regard to case) -> the route's upstream; a missing or unknown
value takes `default`. The queue fallback passes the route Nginx chose ($sq_route), so both
paths treat an unknown or differently cased value alike.
"""
        ),
        *_header_map(fleet, ROUTE_VARIABLE, names),
        "",
        *_header_map(fleet, ROUTE_NAME_VARIABLE, {**routes, DEFAULT_ROUTE: DEFAULT_ROUTE}),
    ]


def _outcome_map() -> list[str]:
    return [
        *_comment(
            """
Queue fallback only for requests no GPU accepted. proxy_next_upstream moves a request to the
next GPU of its route on `error`/`timeout` while connecting (nothing was sent, so this is safe
for POST too) and on 502/503 for idempotent methods; Nginx never re-sends a POST that reached a
GPU (no `non_idempotent`). When the GPUs of the route are exhausted, error_page sends the
502/503/504 to @queue_fallback, which classifies the LAST GPU attempt (the variables are
comma-separated lists, one entry per attempt; "-" = no connection or no header):
  queue   - no TCP connection was made (refused, connect timeout, every GPU marked down), or
            the GPU answered 502/503 itself: it did not take the job, the queue runs it.
  timeout - the GPU took the request and sent no status line within proxy_read_timeout, or
            answered 504 itself: it may still be generating, so the client gets 504 with
            `x-should-retry: false`; re-queueing would run the job twice.
  error   - the connection broke after the request was sent: the client gets 502.
"""
        ),
        *_block(
            f'map "$upstream_connect_time|$upstream_header_time|$upstream_status" '
            f"{OUTCOME_VARIABLE}",
            [
                '"~^(?:[^|]*, )?-\\|" queue;',
                '"~^[^|]*\\|(?:[^|]*, )?[0-9.]+\\|(?:[^|]*, )?50[23]$" queue;',
                '"~\\|(?:[^|]*, )?504$" timeout;',
                "default error;",
            ],
        ),
    ]


def _server_line(gpu: GpuConfig, *, backup: bool, options: NginxOptions) -> str:
    address = upstream_address(gpu.url, what=f"gpus.{gpu.name}.url")
    limits = f"max_fails={options.max_fails} fail_timeout={options.fail_timeout_s}s"
    return f"server {address} {limits}{' backup' if backup else ''};  # {gpu.name}"


def _keepalive(options: NginxOptions) -> list[str]:
    return [f"keepalive {options.upstream_keepalive};", "keepalive_timeout 4s;"]


def _upstreams(fleet: FleetConfig, names: dict[str, str], options: NginxOptions) -> list[str]:
    lines = _comment(
        """
One upstream per route: the preferred GPU first, the route's other GPUs as `backup` (used only
while the preferred one is unavailable; several backups share the load in turn). Idle upstream
connections are closed after 4 s, before the GPU servers' own keep-alive timeout (5 s for
llama.cpp and uvicorn), so Nginx does not send a POST on a connection the server is closing.
"""
    )
    for route, name in names.items():
        gpus = fleet.route_gpus(route)
        servers = [
            _server_line(gpu, backup=index > 0, options=options) for index, gpu in enumerate(gpus)
        ]
        lines += [*_block(f"upstream {name}", [*servers, *_keepalive(options)]), ""]
    queue = f"server {upstream_address(options.queue_url, what='queue_url')};"
    return [*lines, *_block(f"upstream {QUEUE_UPSTREAM}", [queue, *_keepalive(options)])]


def _proxy_common() -> list[str]:
    return [
        "proxy_http_version 1.1;",
        'proxy_set_header Connection "";',
        "proxy_set_header X-Real-IP $remote_addr;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_buffering off;",
        "proxy_request_buffering on;",
        "proxy_hide_header X-Routed-To;",
    ]


def _gpu_location(head: str, upstream: str, options: NginxOptions, *, fallback: bool) -> list[str]:
    body = [
        f"set {ROUTED_VARIABLE} {upstream};",
        f"proxy_pass http://{ROUTED_VARIABLE};",
        f"proxy_read_timeout {options.read_timeout_s}s;",
        "proxy_next_upstream error timeout http_502 http_503;",
        f'add_header X-Routed-To "{ROUTED_VARIABLE} $upstream_addr" always;',
    ]
    if fallback:
        body += ["proxy_intercept_errors on;", f"error_page 502 503 504 = {FALLBACK_LOCATION};"]
    return _block(f"location {head}", body)


def _refusal(outcome: str, status: int, message: str, *, retry: bool) -> list[str]:
    body = [f'add_header X-Routed-To "{ROUTED_VARIABLE} $upstream_addr" always;']
    if not retry:
        body.append("add_header x-should-retry false always;")
    body.append(f"return {status} {_json_error(message, 'gpu_' + outcome)};")
    return _block(f"if ({OUTCOME_VARIABLE} = {outcome})", body)


def _fallback_location(options: NginxOptions) -> list[str]:
    timeout = "The GPU accepted the request but sent no answer in time; not re-queued."
    broken = "The GPU connection broke after the request was sent."
    body = [
        "default_type application/json;",
        *_refusal("timeout", 504, timeout, retry=False),
        *_refusal("error", 502, broken, retry=True),
        "# Same method, URI and body; route and priority headers pass, and so does the client's",
        "# Authorization (smartqueue keeps only an HMAC of it: the job's owner). Cookies do not.",
        f"proxy_pass http://{QUEUE_UPSTREAM};",
        *_proxy_common(),
        f"proxy_set_header X-Syslog-Model {ROUTE_NAME_VARIABLE};",
        "proxy_set_header X-Syslog-Priority $http_x_syslog_priority;",
        'proxy_set_header Cookie "";',
        f"proxy_read_timeout {options.queue_read_timeout_s}s;",
        "proxy_next_upstream off;",
        f'add_header X-Routed-To "{QUEUE_UPSTREAM} $upstream_addr" always;',
    ]
    return _block(f"location {FALLBACK_LOCATION}", body)


def _batch_location(options: NginxOptions) -> list[str]:
    body = [
        f"proxy_pass http://{QUEUE_UPSTREAM};",
        f"client_max_body_size {options.max_file_size};",
        "proxy_request_buffering off;  # uploads stream through; smartqueue enforces the limit",
        "proxy_read_timeout 300s;",
        f'add_header X-Routed-To "{QUEUE_UPSTREAM} $upstream_addr" always;',
    ]
    return _block("location ~ ^/v1/(?:files|batches)(?:/|$)", body)


def _server(names: dict[str, str], options: NginxOptions) -> list[str]:
    not_found = "Not found: this server only proxies the OpenAI API under /v1/."
    body = [
        f"listen {options.listen};",
        "server_name _;",
        f"set {ROUTED_VARIABLE} -;",
        "keepalive_timeout 65s;",
        "limit_req zone=sq_per_ip" + (f" burst={options.burst} nodelay;" if options.burst else ";"),
        f"proxy_connect_timeout {options.connect_timeout_s}s;",
        "proxy_send_timeout 60s;",
        *_proxy_common(),
        "",
        "# Completions: the only calls the queue can take over.",
        *_gpu_location("~ ^/v1/(?:chat/)?completions$", ROUTE_VARIABLE, options, fallback=True),
        "",
        "# Model list: from the default route, or from the queue while those GPUs are down.",
        *_gpu_location("= /v1/models", names[DEFAULT_ROUTE], options, fallback=True),
        "",
        "# Files and batches (the Batch API): smartqueue itself; the credential names the owner.",
        *_batch_location(options),
        "",
        "# Other OpenAI calls (embeddings, ...): the route's GPUs, no queue fallback.",
        *_gpu_location("/v1/", ROUTE_VARIABLE, options, fallback=False),
        "",
        *_fallback_location(options),
        "",
        "# Everything else (the queue's admin paths included) is not served here.",
        *_block(
            "location /",
            [
                "default_type application/json;",
                f"return 404 {_json_error(not_found, 'not_found')};",
            ],
        ),
    ]
    return _block("server", body)


def render_nginx_config(fleet: FleetConfig, options: NginxOptions) -> str:
    """The complete Nginx config for `fleet`; same inputs, same bytes."""
    names = upstream_names(fleet)
    http = [
        *_http_basics(options),
        "",
        *_client_limits(options),
        "",
        *_route_maps(fleet, names),
        "",
        *_outcome_map(),
        "",
        *_upstreams(fleet, names, options),
        "",
        *_server(names, options),
    ]
    lines = [*_header(options), "", *_main_context(options), "", *_block("http", http)]
    return "\n".join(lines) + "\n"


def write_nginx_config(path: Path, text: str) -> None:
    """Write `text` to `path` atomically (a reader never sees half a config)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as stream:
            stream.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _build_options(prefix: Path | None, out: Path, **values: object) -> NginxOptions:
    directory = prefix if prefix is not None else out.resolve().parent
    try:
        return NginxOptions.model_validate({"prefix": str(directory), **values})
    except ValidationError as error:
        raise typer.BadParameter(describe_validation_error(error)) from None


def render_command(
    fleet: Annotated[Path, typer.Option(help="Fleet YAML file (GPUs and routes).")],
    out: Annotated[Path, typer.Option(help="Config file to write.")],
    listen: Annotated[str, typer.Option(help="PORT or ADDRESS:PORT to listen on.")] = "80",
    queue_url: Annotated[
        str, typer.Option(help="smartqueue base URL for the fallback.")
    ] = "http://127.0.0.1:8091",
    prefix: Annotated[
        Path | None, typer.Option(help="Dir for pid, temp dirs, logs (default: OUT's dir).")
    ] = None,
    log_to_stdio: Annotated[
        bool, typer.Option(help="Error log to stderr, access log to stdout (containers).")
    ] = False,
    workers: Annotated[str, typer.Option(help="worker_processes: auto or a count.")] = "auto",
    rate_per_s: Annotated[int, typer.Option(help="Per-IP requests/s before 429.")] = 10,
    burst: Annotated[int, typer.Option(help="Per-IP burst above the rate.")] = 20,
    max_body_size: Annotated[str, typer.Option(help="Largest body (413 above).")] = "1m",
    connect_timeout_s: Annotated[int, typer.Option(help="GPU connect timeout.")] = 2,
    read_timeout_s: Annotated[int, typer.Option(help="GPU read timeout.")] = 600,
    queue_read_timeout_s: Annotated[int, typer.Option(help="Queue read timeout.")] = 960,
) -> None:
    """Render the Nginx config for a fleet file and write it to OUT."""
    try:
        fleet_config = load_fleet(fleet)
    except FleetError as error:
        raise typer.BadParameter(str(error), param_hint="--fleet") from None
    options = _build_options(
        prefix,
        out,
        listen=listen,
        queue_url=queue_url,
        log_to_stdio=log_to_stdio,
        worker_processes=workers,
        rate_per_s=rate_per_s,
        burst=burst,
        max_body_size=max_body_size,
        connect_timeout_s=connect_timeout_s,
        read_timeout_s=read_timeout_s,
        queue_read_timeout_s=queue_read_timeout_s,
    )
    try:
        text = render_nginx_config(fleet_config, options)
    except NginxRenderError as error:
        raise typer.BadParameter(str(error)) from None
    write_nginx_config(out, text)
    typer.echo(f"wrote {out} (prefix {options.prefix})")


def register(app: typer.Typer) -> None:
    """Add the `nginx` command group to the `smartqueue` CLI."""
    group = typer.Typer(no_args_is_help=True, help="The public Nginx front.")
    group.command("render")(render_command)
    app.add_typer(group, name="nginx")
