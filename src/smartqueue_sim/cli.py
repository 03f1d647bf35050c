"""`smartqueue-sim`: simulated GPUs for demos, tests and benchmarks (`gpu` and `fleet`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from smartqueue.config import Engine, FleetError, GpuConfig, load_fleet
from smartqueue_sim.faults import FaultMode, FaultSettings
from smartqueue_sim.fleet import (
    ProfileChoice,
    SimFleetError,
    address_of,
    api_key_of,
    chosen_profile,
    default_profiles_path,
    load_profile_choices,
    parse_profile_options,
    unknown_gpus,
)
from smartqueue_sim.gpu import SimSettings
from smartqueue_sim.latency import DEFAULT_PROFILE, LatencyProfile, builtin_profile
from smartqueue_sim.listener import BindError
from smartqueue_sim.messages import one_line
from smartqueue_sim.runner import SimAddress, build_node, run_nodes

GPU_HELP = "Run one simulated GPU: an OpenAI-compatible server plus its metrics sidecar."
FLEET_HELP = "Run one simulated GPU per GPU of a loopback fleet file, in one process."
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
PROG_NAME = "smartqueue-sim"


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)


def _check_log_level(value: str) -> str:
    if value not in LOG_LEVELS:
        raise typer.BadParameter(f"choose one of {', '.join(LOG_LEVELS)}")
    return value


def _profile_with_overrides(name: str, overrides: dict[str, Any]) -> LatencyProfile:
    base = builtin_profile(name)
    given = {key: value for key, value in overrides.items() if value is not None}
    return LatencyProfile.model_validate({**base.model_dump(), **given})


def gpu_command(
    port: Annotated[int, typer.Option(help="OpenAI/engine port (0: any free port)")] = 8080,
    sidecar_port: Annotated[int, typer.Option(help="Sidecar + control port (0: any)")] = 8090,
    host: Annotated[
        str, typer.Option(help="Loopback address or name (binds all it resolves to)")
    ] = "127.0.0.1",
    engine: Annotated[
        Engine, typer.Option(help="Engine whose endpoints to mimic")
    ] = Engine.LLAMACPP,
    model: Annotated[str, typer.Option(help="Served model name")] = "sim-model",
    slots: Annotated[int, typer.Option(min=1, max=1024, help="Concurrent generations")] = 2,
    speed: Annotated[float, typer.Option(min=0.001, help="Divide every duration by this")] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of output text and fault draws")] = 0,
    name: Annotated[str, typer.Option(help="Name shown in logs and /sim/settings")] = "sim",
    profile: Annotated[str, typer.Option(help="Built-in latency profile")] = DEFAULT_PROFILE,
    ttft_base_ms: Annotated[float | None, typer.Option(help="Override: base TTFT")] = None,
    ttft_per_prompt_token_ms: Annotated[
        float | None, typer.Option(help="Override: TTFT per prompt token")
    ] = None,
    tokens_per_s: Annotated[float | None, typer.Option(help="Override: decode speed")] = None,
    slowdown_per_busy_slot: Annotated[
        float | None, typer.Option(help="Override: slowdown per other busy slot")
    ] = None,
    default_output_tokens: Annotated[
        int | None, typer.Option(help="Override: output length without max_tokens")
    ] = None,
    vram_total_mb: Annotated[int, typer.Option(min=1, help="VRAM the sidecar reports")] = 24576,
    loading_delay_s: Annotated[float, typer.Option(min=0, help="/health is 503 so long")] = 0.0,
    fault: Annotated[FaultMode, typer.Option(help="Fault active from the start")] = FaultMode.NONE,
    fault_rate: Annotated[float, typer.Option(min=0, max=1, help="Share of requests hit")] = 1.0,
    retry_after_s: Annotated[int, typer.Option(min=0, help="Retry-After of 429/503")] = 5,
    drip_interval_s: Annotated[float, typer.Option(min=0.001, help="Drip pause")] = 2.0,
    slow_start_s: Annotated[float, typer.Option(min=0, help="slow_start delay")] = 5.0,
    api_key: Annotated[
        str | None, typer.Option(help="Engine port wants `Authorization: Bearer KEY`")
    ] = None,
    ready_file: Annotated[Path | None, typer.Option(help="Write URLs here as JSON once up")] = None,
    log_level: Annotated[str, typer.Option(callback=_check_log_level)] = "warning",
) -> None:
    """Run one simulated GPU until SIGINT/SIGTERM."""
    overrides = {
        "ttft_base_ms": ttft_base_ms,
        "ttft_per_prompt_token_ms": ttft_per_prompt_token_ms,
        "tokens_per_s": tokens_per_s,
        "slowdown_per_busy_slot": slowdown_per_busy_slot,
        "default_output_tokens": default_output_tokens,
    }
    try:
        faults = FaultSettings(
            mode=fault,
            rate=fault_rate,
            retry_after_s=retry_after_s,
            drip_interval_s=drip_interval_s,
            slow_start_s=slow_start_s,
        )
        settings = SimSettings(
            name=name,
            engine=engine,
            model=model,
            slots=slots,
            speed=speed,
            seed=seed,
            profile_name=profile,
            profile=_profile_with_overrides(profile, overrides),
            vram_total_mb=vram_total_mb,
            loading_delay_s=loading_delay_s,
            faults=faults,
            api_key=api_key,
        )
    except (ValidationError, ValueError) as error:
        raise _fail(one_line(error)) from None
    address = SimAddress(host=host, port=port, sidecar_port=sidecar_port)
    _run([(settings, address)], ready_file=ready_file, log_level=log_level)


def fleet_command(
    fleet: Annotated[Path, typer.Option(help="Fleet file (loopback URLs)")] = Path(
        "deploy/fleet.local.yaml"
    ),
    profiles: Annotated[
        Path | None,
        typer.Option(help="GPU -> profile YAML (default: sim-profiles.yaml beside the fleet file)"),
    ] = None,
    profile: Annotated[list[str] | None, typer.Option(help="GPU=PROFILE, repeatable")] = None,
    speed: Annotated[float, typer.Option(min=0.001, help="Divide every duration by this")] = 1.0,
    seed: Annotated[int, typer.Option(help="Seed of output text and fault draws")] = 0,
    loading_delay_s: Annotated[float, typer.Option(min=0, help="/health is 503 so long")] = 0.0,
    ready_file: Annotated[Path | None, typer.Option(help="Write URLs here as JSON once up")] = None,
    log_level: Annotated[str, typer.Option(callback=_check_log_level)] = "warning",
) -> None:
    """Run the fleet's simulated GPUs until SIGINT/SIGTERM."""
    try:
        config = load_fleet(fleet)
        profiles_path = profiles or default_profiles_path(fleet)
        choices = load_profile_choices(profiles_path) if profiles_path else {}
        choices.update(parse_profile_options(profile or []))
        if unknown := unknown_gpus(config, choices):
            raise SimFleetError(f"profiles name GPUs not in {fleet}: {', '.join(unknown)}")
        plan = [
            (
                _gpu_settings(
                    gpu, choices, speed=speed, seed=seed, loading_delay_s=loading_delay_s
                ),
                address_of(gpu),
            )
            for gpu in config.gpus
        ]
    except (FleetError, SimFleetError, ValidationError) as error:
        raise _fail(one_line(error)) from None
    _run(plan, ready_file=ready_file, log_level=log_level)


def _gpu_settings(
    gpu: GpuConfig,
    choices: dict[str, ProfileChoice],
    *,
    speed: float,
    seed: int,
    loading_delay_s: float,
) -> SimSettings:
    profile_name, latency = chosen_profile(gpu.name, choices)
    return SimSettings(
        name=gpu.name,
        engine=gpu.engine,
        model=gpu.model,
        slots=gpu.slots,
        speed=speed,
        seed=seed,
        profile_name=profile_name,
        profile=latency,
        vram_total_mb=gpu.vram_total_mb,
        loading_delay_s=loading_delay_s,
        api_key=api_key_of(gpu, os.environ),
    )


def _run(
    plan: list[tuple[SimSettings, SimAddress]], *, ready_file: Path | None, log_level: str
) -> None:
    try:
        nodes = [build_node(settings, address, log_level=log_level) for settings, address in plan]
    except BindError as error:
        raise _fail(str(error)) from None
    run_nodes(nodes, ready_file=ready_file)


app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
app.command("gpu", help=GPU_HELP)(gpu_command)
app.command("fleet", help=FLEET_HELP)(fleet_command)


@app.callback()
def root() -> None:
    """smartqueue-sim: simulated GPUs (llama.cpp, vLLM, Ollama) with faults, on loopback."""


def main(args: Sequence[str] | None = None, *, prog_name: str = PROG_NAME) -> None:
    """Entry point of the `smartqueue-sim` console script (and of `smartqueue sim`)."""
    app(args=None if args is None else list(args), prog_name=prog_name)
