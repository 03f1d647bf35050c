"""`smartqueue-sim fleet`: one simulated GPU per GPU of a loopback fleet file, in one process.

Latency profiles are not part of the fleet schema; a small profiles file maps GPU names to
built-in profiles (optionally with overrides), and unnamed GPUs get the default profile. A GPU
with `api_key_env` wants the key that variable holds, as the real server would.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from smartqueue.config import FleetConfig, GpuConfig
from smartqueue_sim.latency import DEFAULT_PROFILE, LatencyProfile, builtin_profile
from smartqueue_sim.messages import one_line
from smartqueue_sim.runner import SimAddress

PROFILES_FILE_NAME = "sim-profiles.yaml"


class SimFleetError(ValueError):
    """The fleet cannot run as sims: a profile choice, a GPU's address or its API key is wrong."""


class ProfileChoice(BaseModel):
    """A built-in profile for one GPU, with optional field overrides."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    profile: str = DEFAULT_PROFILE
    overrides: dict[str, Any] = Field(default_factory=dict)

    def resolve(self) -> LatencyProfile:
        """The profile with its overrides applied and validated."""
        base = builtin_profile(self.profile)
        return LatencyProfile.model_validate({**base.model_dump(), **self.overrides})


def parse_profile_choices(document: object, *, source: str) -> dict[str, ProfileChoice]:
    """`gpu: profile-name` or `gpu: {profile: name, overrides: {...}}` entries."""
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise SimFleetError(f"{source}: expected a mapping of GPU name to profile")
    choices: dict[str, ProfileChoice] = {}
    for gpu, entry in document.items():
        value = {"profile": entry} if isinstance(entry, str) else entry
        try:
            choices[str(gpu)] = ProfileChoice.model_validate(value)
            choices[str(gpu)].resolve()
        except (ValidationError, ValueError) as error:
            raise SimFleetError(f"{source}: {gpu}: {one_line(error)}") from None
    return choices


def load_profile_choices(path: Path) -> dict[str, ProfileChoice]:
    """Read a profiles YAML file."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as error:
        raise SimFleetError(f"{path}: cannot read profiles ({error})") from None
    return parse_profile_choices(document, source=str(path))


def default_profiles_path(fleet_path: Path) -> Path | None:
    """`sim-profiles.yaml` beside the fleet file, when it exists."""
    candidate = fleet_path.with_name(PROFILES_FILE_NAME)
    return candidate if candidate.is_file() else None


def parse_profile_options(options: list[str]) -> dict[str, ProfileChoice]:
    """`--profile GPU=NAME` options."""
    choices: dict[str, ProfileChoice] = {}
    for option in options:
        gpu, sep, name = option.partition("=")
        if not sep or not gpu or not name:
            raise SimFleetError(f"--profile {option!r}: expected GPU=PROFILE")
        choices.update(parse_profile_choices({gpu: name}, source="--profile"))
    return choices


def address_of(gpu: GpuConfig) -> SimAddress:
    """Host and ports a GPU's sim listens on, from its `url` and `sidecar_url`."""
    main, sidecar = urlsplit(gpu.url), urlsplit(gpu.sidecar_url)
    if main.hostname != sidecar.hostname:
        raise SimFleetError(f"{gpu.name}: url and sidecar_url must name the same host")
    if main.port is None or sidecar.port is None:
        raise SimFleetError(f"{gpu.name}: url and sidecar_url need explicit ports")
    return SimAddress(host=main.hostname or "", port=main.port, sidecar_port=sidecar.port)


def api_key_of(gpu: GpuConfig, environ: Mapping[str, str]) -> str | None:
    """The key a GPU's sim wants: the value of its `api_key_env` variable (None: it has none)."""
    if gpu.api_key_env is None:
        return None
    key = environ.get(gpu.api_key_env, "")
    if not key:
        raise SimFleetError(f"{gpu.name}: api_key_env {gpu.api_key_env} is not set or empty")
    return key


def chosen_profile(gpu_name: str, choices: dict[str, ProfileChoice]) -> tuple[str, LatencyProfile]:
    """Profile name and values for a GPU: its choice, or the default profile."""
    choice = choices.get(gpu_name, ProfileChoice())
    return choice.profile, choice.resolve()


def unknown_gpus(fleet: FleetConfig, choices: dict[str, ProfileChoice]) -> list[str]:
    """Names in the profile choices that the fleet does not have (likely typos)."""
    known = {gpu.name for gpu in fleet.gpus}
    return sorted(set(choices) - known)
