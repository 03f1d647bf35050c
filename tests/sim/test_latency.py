"""The pure latency model: time to first token, per-token time, output length."""

from __future__ import annotations

import pytest

from smartqueue_sim.latency import (
    BUILTIN_PROFILES,
    FinishReason,
    LatencyProfile,
    builtin_profile,
    output_length,
    time_to_first_token_s,
    token_interval_s,
)

PROFILE = LatencyProfile(
    ttft_base_ms=100,
    ttft_per_prompt_token_ms=2,
    tokens_per_s=50,
    slowdown_per_busy_slot=0.25,
    default_output_tokens=64,
    context_tokens=1000,
    model_vram_mb=1000,
    context_vram_mb=100,
)


@pytest.mark.parametrize(
    ("prompt_tokens", "busy_slots", "speed", "expected_s"),
    [
        (0, 1, 1.0, 0.100),
        (50, 1, 1.0, 0.200),
        (50, 1, 100.0, 0.002),
        (50, 3, 1.0, 0.300),  # two other busy slots: 1.5x slower
        (0, 0, 10.0, 0.010),
    ],
)
def test_time_to_first_token_grows_with_prompt_and_load_and_shrinks_with_speed(
    prompt_tokens: int, busy_slots: int, speed: float, expected_s: float
) -> None:
    got = time_to_first_token_s(
        PROFILE, prompt_tokens=prompt_tokens, busy_slots=busy_slots, speed=speed
    )
    assert got == pytest.approx(expected_s)


@pytest.mark.parametrize(
    ("busy_slots", "speed", "expected_s"),
    [(1, 1.0, 0.02), (2, 1.0, 0.025), (5, 1.0, 0.04), (1, 10.0, 0.002)],
)
def test_token_interval_follows_decode_speed_busy_slots_and_speed_factor(
    busy_slots: int, speed: float, expected_s: float
) -> None:
    assert token_interval_s(PROFILE, busy_slots=busy_slots, speed=speed) == pytest.approx(
        expected_s
    )


@pytest.mark.parametrize(
    ("max_tokens", "prompt_tokens", "expected"),
    [
        (None, 10, (64, FinishReason.STOP)),
        (5, 10, (5, FinishReason.LENGTH)),
        (500, 10, (500, FinishReason.LENGTH)),
        (5000, 10, (990, FinishReason.LENGTH)),  # capped by the context window
        (None, 990, (10, FinishReason.LENGTH)),
    ],
)
def test_output_length_comes_from_max_tokens_else_the_profile_default(
    max_tokens: int | None, prompt_tokens: int, expected: tuple[int, FinishReason]
) -> None:
    assert output_length(PROFILE, max_tokens=max_tokens, prompt_tokens=prompt_tokens) == expected


def test_builtin_profile_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="moe-fast"):
        builtin_profile("warp-drive")


def test_builtin_profiles_rank_light_fastest_and_dense_slowest() -> None:
    speeds = {name: profile.tokens_per_s for name, profile in BUILTIN_PROFILES.items()}
    assert speeds["light-fast"] > speeds["moe-fast"] > speeds["dense-code"]
