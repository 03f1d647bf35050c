"""Pure latency model: time to first token, time per token and output length of a request."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class FinishReason(StrEnum):
    """Why a generation ended, as OpenAI reports it."""

    STOP = "stop"
    LENGTH = "length"


class LatencyProfile(BaseModel):
    """How fast one simulated GPU answers and how much memory it uses; durations at speed 1."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ttft_base_ms: float = Field(ge=0, description="Time to first token of an empty prompt")
    ttft_per_prompt_token_ms: float = Field(ge=0, description="Prompt processing cost per token")
    tokens_per_s: float = Field(gt=0, description="Decode speed of one slot generating alone")
    slowdown_per_busy_slot: float = Field(
        ge=0, description="Extra fraction of time per token for each other busy slot"
    )
    default_output_tokens: int = Field(ge=1, description="Output length without max_tokens")
    context_tokens: int = Field(ge=16, description="Context window of one slot")
    model_vram_mb: int = Field(ge=0, description="VRAM held by the loaded weights")
    context_vram_mb: int = Field(ge=0, description="Extra VRAM per active context")


BUILTIN_PROFILES: dict[str, LatencyProfile] = {
    "default": LatencyProfile(
        ttft_base_ms=200,
        ttft_per_prompt_token_ms=0.5,
        tokens_per_s=40,
        slowdown_per_busy_slot=0.10,
        default_output_tokens=128,
        context_tokens=8192,
        model_vram_mb=6000,
        context_vram_mb=512,
    ),
    # A large mixture-of-experts model: only a few experts are active, so it decodes fast.
    "moe-fast": LatencyProfile(
        ttft_base_ms=150,
        ttft_per_prompt_token_ms=0.3,
        tokens_per_s=60,
        slowdown_per_busy_slot=0.08,
        default_output_tokens=128,
        context_tokens=32768,
        model_vram_mb=28000,
        context_vram_mb=2048,
    ),
    "dense-code": LatencyProfile(
        ttft_base_ms=400,
        ttft_per_prompt_token_ms=1.0,
        tokens_per_s=25,
        slowdown_per_busy_slot=0.15,
        default_output_tokens=256,
        context_tokens=16384,
        model_vram_mb=20000,
        context_vram_mb=1024,
    ),
    "light-fast": LatencyProfile(
        ttft_base_ms=80,
        ttft_per_prompt_token_ms=0.15,
        tokens_per_s=90,
        slowdown_per_busy_slot=0.12,
        default_output_tokens=96,
        context_tokens=8192,
        model_vram_mb=8000,
        context_vram_mb=512,
    ),
}
DEFAULT_PROFILE = "default"


def builtin_profile(name: str) -> LatencyProfile:
    """The built-in profile called `name` (ValueError naming the known ones otherwise)."""
    try:
        return BUILTIN_PROFILES[name]
    except KeyError:
        known = ", ".join(sorted(BUILTIN_PROFILES))
        raise ValueError(f"unknown latency profile {name!r} (known: {known})") from None


def slowdown_factor(profile: LatencyProfile, *, busy_slots: int) -> float:
    """How much slower each step runs while `busy_slots` slots generate (1.0 when alone)."""
    return 1.0 + profile.slowdown_per_busy_slot * max(0, busy_slots - 1)


def time_to_first_token_s(
    profile: LatencyProfile, *, prompt_tokens: int, busy_slots: int, speed: float
) -> float:
    """Seconds from taking a slot to the first output token."""
    base_ms = profile.ttft_base_ms + profile.ttft_per_prompt_token_ms * prompt_tokens
    return base_ms / 1000 * slowdown_factor(profile, busy_slots=busy_slots) / speed


def token_interval_s(profile: LatencyProfile, *, busy_slots: int, speed: float) -> float:
    """Seconds between two output tokens of one slot."""
    return slowdown_factor(profile, busy_slots=busy_slots) / profile.tokens_per_s / speed


def output_length(
    profile: LatencyProfile, *, max_tokens: int | None, prompt_tokens: int
) -> tuple[int, FinishReason]:
    """Tokens to generate and the finish reason: max_tokens when given, else the default."""
    room = max(1, profile.context_tokens - prompt_tokens)
    if max_tokens is None:
        wanted = profile.default_output_tokens
        return (wanted, FinishReason.STOP) if wanted <= room else (room, FinishReason.LENGTH)
    return min(max_tokens, room), FinishReason.LENGTH
