"""Pure fault model: the faults a simulated GPU can inject and which request each one hits."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class FaultMode(StrEnum):
    """One way a GPU server misbehaves; `none` answers normally."""

    NONE = "none"
    ERROR = "error"  # 500 with an OpenAI error body
    RATE_LIMIT = "rate_limit"  # 429 + Retry-After
    UNAVAILABLE = "unavailable"  # 503 + Retry-After
    REFUSE = "refuse"  # the main port refuses TCP connections
    HANG = "hang"  # accept the request and never answer
    DRIP = "drip"  # headers, then one body byte every drip interval
    INVALID_JSON = "invalid_json"  # 200 with a body that is not JSON
    CLOSE_MID_STREAM = "close_mid_stream"  # close the connection halfway through the body
    SLOW_START = "slow_start"  # answer normally after an extra delay


class FaultSettings(BaseModel):
    """The active fault and its parameters; durations at speed 1."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: FaultMode = FaultMode.NONE
    rate: float = Field(
        default=1.0, ge=0, le=1, description="Share of inference requests hit (not for refuse)"
    )
    retry_after_s: int = Field(
        default=5, ge=0, le=3600, description="Retry-After of rate_limit/unavailable (unscaled)"
    )
    drip_interval_s: float = Field(default=2.0, gt=0, description="Pause between dripped bytes")
    slow_start_s: float = Field(default=5.0, ge=0, description="Extra delay of slow_start")


def fault_for_request(settings: FaultSettings, *, draw: float) -> FaultMode:
    """The fault that hits one inference request, given a uniform draw in [0, 1)."""
    if settings.mode in (FaultMode.NONE, FaultMode.REFUSE):
        return FaultMode.NONE
    return settings.mode if draw < settings.rate else FaultMode.NONE
