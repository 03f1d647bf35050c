"""Configuration: service settings from `SMARTQUEUE_*` env vars and the fleet file.

Both are read once at start-up and passed down; nothing here is a module global.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from smartqueue.redis_url import RedisTarget, parse_redis_url

DEFAULT_ROUTE = "default"
ENV_PREFIX = "SMARTQUEUE_"


class FleetError(Exception):
    """The fleet file is missing or invalid; the message is one line naming the field."""


class Engine(StrEnum):
    """Inference server software on a GPU host; decides which metric endpoints exist."""

    LLAMACPP = "llamacpp"
    VLLM = "vllm"
    OLLAMA = "ollama"
    OPENAI = "openai"


def _check_http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http(s) URL with a host, got {value!r}")
    if parts.query or parts.fragment:
        raise ValueError(f"must not carry a query or fragment, got {value!r}")
    return value.rstrip("/")


class GpuConfig(BaseModel):
    """One GPU host: its OpenAI-compatible server and its metrics sidecar."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=64)]
    url: str = Field(description="OpenAI-compatible base URL, without /v1")
    sidecar_url: str = Field(description="Base URL of the GPU metrics sidecar")
    engine: Engine
    model: str = Field(min_length=1, description="Model name the server serves")
    slots: int = Field(ge=1, le=1024, description="Most concurrent jobs smartqueue sends")
    vram_total_mb: int = Field(gt=0)
    api_key_env: str | None = Field(
        default=None, description="Env var holding the API key smartqueue sends to this GPU"
    )
    sidecar_gpu: int = Field(
        default=0, ge=0, description="GPU index the prober asks the sidecar for (/health?gpu=N)"
    )

    _urls_are_http = field_validator("url", "sidecar_url")(_check_http_url)

    @model_validator(mode="before")
    @classmethod
    def _refuse_priority(cls, data: Any) -> Any:
        # An old fleet file's `priority` must not look as if it still did something.
        if isinstance(data, dict) and "priority" in data:
            raise ValueError(
                "priority is not a GPU setting: preference is the order of each route's GPUs"
                " (first listed first)"
            )
        return data


class FleetConfig(BaseModel):
    """The GPUs and the routes (`X-Syslog-Model` value -> GPUs in order of preference)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gpus: list[GpuConfig] = Field(min_length=1)
    routes: dict[str, list[str]] = Field(min_length=1)
    _modified_at: int | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _check_references(self) -> FleetConfig:
        names = [gpu.name for gpu in self.gpus]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise ValueError(f"gpus[{index}].name: duplicate GPU name {name!r}")
        if DEFAULT_ROUTE not in self.routes:
            raise ValueError(f"routes: a {DEFAULT_ROUTE!r} route is required")
        for route, members in self.routes.items():
            _check_route(route, members, names)
        return self

    def gpu(self, name: str) -> GpuConfig:
        """The GPU called `name` (KeyError if the fleet has none)."""
        for gpu in self.gpus:
            if gpu.name == name:
                return gpu
        raise KeyError(name)

    def route_gpus(self, route: str) -> list[GpuConfig]:
        """GPUs of a route, preferred first."""
        return [self.gpu(name) for name in self.routes[route]]

    @property
    def route_names(self) -> list[str]:
        """Every route name, in file order."""
        return list(self.routes)

    @property
    def modified_at(self) -> int | None:
        """Unix time the fleet file was last changed (None when not read from a file)."""
        return self._modified_at


def _check_route(route: str, members: list[str], known: list[str]) -> None:
    if not route or len(route) > 128 or not route.isprintable():
        raise ValueError(f"routes: invalid route name {route!r}")
    if not members:
        raise ValueError(f"routes.{route}: lists no GPU")
    for index, member in enumerate(members):
        if member not in known:
            raise ValueError(
                f"routes.{route}[{index}]: unknown GPU {member!r} (known: {', '.join(known)})"
            )
        if member in members[:index]:
            raise ValueError(f"routes.{route}[{index}]: GPU {member!r} listed twice")


def describe_validation_error(error: ValidationError, *, env_prefix: str | None = None) -> str:
    """The first problem of `error` as one line, `where: what` (an env var with env_prefix)."""
    return describe_errors(error.errors(), env_prefix=env_prefix)[0]


def describe_errors(
    errors: Sequence[Mapping[str, Any]], *, env_prefix: str | None = None
) -> tuple[str, str | None]:
    """The first of pydantic's `errors()` in one line, and the field it names (for `param`)."""
    first = errors[0]
    location = tuple(first.get("loc", ()))
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    where = _env_name(location, env_prefix) if env_prefix is not None else _path(location)
    param = str(location[-1]) if location else None
    return (f"{where}: {message}" if where else message), param


def _path(location: tuple[int | str, ...]) -> str:
    """`gpus[0].slots` for the location ("gpus", 0, "slots")."""
    parts = (f"[{part}]" if isinstance(part, int) else f".{part}" for part in location)
    return "".join(parts).lstrip(".")


def _env_name(location: tuple[int | str, ...], prefix: str) -> str:
    """`SMARTQUEUE_MAX_RETRIES` for the location ("max_retries",)."""
    return (prefix + "_".join(str(part) for part in location)).upper() if location else ""


def parse_fleet(document: Any, *, source: str = "fleet") -> FleetConfig:
    """Validate a parsed fleet document, raising FleetError with one clear line."""
    if not isinstance(document, dict):
        raise FleetError(f"{source}: expected a mapping with 'gpus' and 'routes'")
    try:
        return FleetConfig.model_validate(document)
    except ValidationError as error:
        raise FleetError(f"{source}: {describe_validation_error(error)}") from None


def load_fleet(path: Path) -> FleetConfig:
    """Read and validate the fleet YAML file at `path`."""
    try:
        text = path.read_text(encoding="utf-8")
        modified_at = int(path.stat().st_mtime)
    except OSError as error:
        raise FleetError(f"{path}: cannot read fleet file ({error.strerror})") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise FleetError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    fleet = parse_fleet(document, source=str(path))
    fleet._modified_at = modified_at
    return fleet


class Settings(BaseSettings):
    """Service settings; every field can be set with `SMARTQUEUE_<FIELD>`."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        description="redis://, rediss://, redis+sentinel://h1,h2/service/0, redis+cluster://h1,h2/",
    )
    redis_password: SecretStr | None = Field(default=None, description="AUTH for Redis itself")
    sentinel_password: SecretStr | None = Field(default=None, description="AUTH for Sentinels")
    redis_min_replicas: int = Field(
        default=0, ge=0, description="replicas that must hold a submission before its 202 (WAIT)"
    )
    redis_replica_wait_s: float = Field(
        default=0.5, gt=0,
        description="longest WAIT for those replicas (at most half the Redis timeout); then 503",
    )  # fmt: skip
    fleet: Path = Path("deploy/fleet.local.yaml")
    admin_token: SecretStr | None = None
    owner_secret: SecretStr | None = Field(
        default=None,
        description="HMAC key of the owner a caller's credential names (jobs, batches, files); "
        "without it one is generated at start (owners then do not survive a restart, nor "
        "match across replicas)",
    )
    key_prefix: str = Field(default="sq", pattern=r"^[A-Za-z0-9_.:-]+$")
    log_level: str = Field(default="info", pattern=r"^(?i:debug|info|warning|error)$")

    @field_validator("redis_url")
    @classmethod
    def _redis_url_parses(cls, value: str) -> str:
        parse_redis_url(value)
        return value

    @property
    def redis_target(self) -> RedisTarget:
        """The Redis deployment `redis_url` names."""
        return parse_redis_url(self.redis_url)

    # Backpressure (depth = jobs waiting for dispatch).
    queue_warn_depth: int = Field(default=30, ge=1)
    queue_overload_depth: int = Field(default=40, ge=1)
    queue_open_depth: int = Field(default=50, ge=1)
    ceiling_low: int = Field(default=30, ge=1, description="low is refused from this depth")
    ceiling_normal: int = Field(default=40, ge=1)
    ceiling_high: int = Field(default=50, ge=1)
    queue_max_depth: int = Field(
        default=10_000, ge=1, description="jobs waiting over all routes: refused from here"
    )

    # Jobs.
    max_retries: int = Field(default=3, ge=0)
    job_timeout_s: float = Field(default=300.0, gt=0)
    max_wait_s: float = Field(default=600.0, gt=0, description="queued longer -> dead")
    terminal_ttl_s: int = Field(default=86_400, ge=1)
    events_ttl_s: int = Field(
        default=600, ge=1, description="an ended job's event stream is kept this long"
    )
    max_body_bytes: int = Field(default=1_048_576, ge=1)
    max_result_bytes: int = Field(default=8_388_608, ge=1)
    idempotency_ttl_s: int = Field(default=86_400, ge=1)
    max_header_bytes: int = Field(
        default=8_192, ge=64, description="largest header kept with a job (name + value)"
    )
    max_kept_headers_bytes: int = Field(
        default=16_384, ge=64, description="all headers kept with a job together"
    )
    max_header_block_bytes: int = Field(
        default=65_536, ge=1_024, description="the server's whole request header block (431)"
    )
    hold_s: float = Field(
        default=900.0, gt=0, description="how long /v1/... holds a request without Prefer: wait"
    )

    # Files and batches (the OpenAI Files + Batch API).
    blob_dir: Path = Field(
        default=Path("var/blobs"), description="file bytes; a volume every replica shares"
    )
    max_file_bytes: int = Field(
        default=209_715_200, ge=1, description="largest file accepted by POST /v1/files (413)"
    )
    batch_max_requests: int = Field(default=50_000, ge=1, description="lines per batch input")
    batch_waiting_per_slot: int = Field(
        default=2, ge=1, description="batch requests waiting per route: this x the route's slots"
    )
    batch_feed_chunk: int = Field(default=256, ge=1, description="most requests fed per step")

    # Engine.
    consumers: int | None = Field(
        default=None, ge=0, description="consumer tasks per replica (default: the fleet's slots)"
    )
    probe_interval_s: float = Field(default=5.0, gt=0)
    probe_timeout_s: float = Field(default=2.0, gt=0)
    breaker_failure_threshold: int = Field(default=3, ge=1)
    breaker_recovery_s: float = Field(default=30.0, gt=0)
    consumer_ttl_s: float = Field(default=15.0, gt=0, description="silent longer -> gone")
    heartbeat_interval_s: float = Field(default=2.0, gt=0)
    lease_s: float = Field(default=30.0, gt=0, description="slot/claim hold without renewal")
    claim_idle_s: float = Field(default=60.0, gt=0, description="idle longer -> reclaimed")
    priority_aging_s: float = Field(
        default=30.0, gt=0, description="a job waiting this long is served as if high priority"
    )
    plan_window: int = Field(
        default=64, ge=1, le=1000, description="waiting jobs the dispatcher plans over at once"
    )
    plan_max_hold_s: float = Field(
        default=20.0,
        ge=0,
        description="a job waiting this long takes the first free slot "
        "instead of waiting for a faster GPU (docs/scheduling.md)",
    )
    dlq_retention_s: float = Field(
        default=604_800.0, gt=0, description="dead-letter entries older than this are trimmed"
    )
    max_reclaims: int = Field(default=3, ge=1, description="reclaimed more often -> poison")
    retry_base_s: float = Field(default=1.0, gt=0)
    retry_cap_s: float = Field(default=60.0, gt=0)
    idle_poll_s: float = Field(default=0.5, gt=0)
    maintenance_interval_s: float = Field(default=0.25, gt=0)
    reconcile_interval_s: float = Field(
        default=60.0, gt=0, description="how often the depth counters are checked"
    )
    shutdown_grace_s: float = Field(default=30.0, ge=0)
    connect_timeout_s: float = Field(default=3.0, gt=0)

    # Redis client.
    redis_timeout_s: float = Field(default=1.0, gt=0)
    commit_retry_s: float = Field(
        default=30.0, ge=0, description="how long a GPU's outcome is retried against a lost Redis"
    )
    redis_max_connections: int = Field(
        default=512, ge=8, description="connections per replica; past it calls wait briefly"
    )
