"""Planner tables: the plan's rules, free slots with direct traffic, the speed model, job sizes."""

from __future__ import annotations

import math
import random
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smartqueue.planner import (
    DECODE_RANGE_S_PER_TOKEN,
    DEFAULT_PRIOR,
    PlanGpu,
    PlanPolicy,
    Sample,
    Speed,
    SpeedStats,
    Start,
    WaitingJob,
    effective_rank,
    estimate,
    fleet_speeds,
    job_size,
    observe,
    plan,
    predicted_duration_s,
    scaled_policy,
    slot_free_times,
    typical_duration_s,
)

NOW = 100_000.0
FAST = Speed(base_s=0.1, prefill_s_per_token=0.0, decode_s_per_token=0.01)
SLOW = Speed(base_s=0.1, prefill_s_per_token=0.0, decode_s_per_token=0.05)
POLICY = PlanPolicy(aging_s=30.0, max_hold_s=20.0, min_hold_gain_s=0.0)
ROUTES = {"default": ["fast", "slow"], "reversed": ["slow", "fast"], "slow-only": ["slow"]}
HIGH, NORMAL, LOW, BATCH = 0, 1, 2, 3


def job(
    key: str,
    *,
    age_s: float = 0.0,
    rank: int = NORMAL,
    route: str = "default",
    max_tokens: int | None = 100,
    prompt_tokens: int = 0,
) -> WaitingJob:
    """A waiting job enqueued `age_s` before NOW."""
    return WaitingJob(key, route, rank, NOW - age_s, prompt_tokens, max_tokens)


def gpu(
    name: str,
    *,
    free: int = 1,
    busy: tuple[float, ...] = (),
    speed: Speed = FAST,
    can_take: bool = True,
) -> PlanGpu:
    """A GPU with `free` slots free now and others busy for `busy` seconds from NOW."""
    return PlanGpu(name, can_take, free, tuple(NOW + s for s in busy), speed)


def starts_of(
    jobs: list[WaitingJob], gpus: list[PlanGpu], routes: dict[str, list[str]], *, now: float,
    policy: PlanPolicy,
) -> list[Start]:  # fmt: skip
    """The jobs the plan starts now."""
    return plan(jobs, gpus, routes, now=now, policy=policy).starts


def keys_and_gpus(starts: list[Start]) -> list[tuple[str, str]]:
    """The starts without their predicted ends."""
    return [(start.key, start.gpu) for start in starts]


# --- plan ---------------------------------------------------------------------------------------


def test_plan_long_job_waits_for_fast_gpu_while_short_one_takes_slow_free_slot() -> None:
    gpus = [gpu("fast", free=0, busy=(2.0,)), gpu("slow", speed=SLOW)]
    jobs = [job("long", age_s=2.0, max_tokens=1000), job("short", age_s=1.0, max_tokens=10)]

    starts = starts_of(jobs, gpus, ROUTES, now=NOW, policy=POLICY)

    assert starts == [Start("short", "slow", NOW + 0.1 + 10 * 0.05)]


@pytest.mark.parametrize(
    ("gain_s", "expected"),
    [
        (0.0, []),  # waiting for the fast GPU finishes 38 s sooner: hold
        (37.0, []),
        (39.0, [("long", "slow")]),  # a gain under 39 s is not worth leaving a slot idle
    ],
)
def test_plan_holds_only_for_a_gain_above_min_hold_gain(
    gain_s: float, expected: list[tuple[str, str]]
) -> None:
    gpus = [gpu("fast", free=0, busy=(2.0,)), gpu("slow", speed=SLOW)]
    policy = replace(POLICY, min_hold_gain_s=gain_s)

    starts = starts_of([job("long", max_tokens=1000)], gpus, ROUTES, now=NOW, policy=policy)

    assert keys_and_gpus(starts) == expected


@pytest.mark.parametrize(
    ("route", "a_busy", "b_busy", "jobs", "expected"),
    [
        ("default", False, False, 1, [("j0", "fast")]),  # both free: route preference
        ("reversed", False, False, 1, [("j0", "slow")]),
        ("default", True, False, 1, [("j0", "slow")]),  # earliest free slot
        ("default", False, False, 2, [("j0", "fast"), ("j1", "slow")]),
        ("default", True, True, 1, []),
    ],
)
def test_plan_identical_gpus_is_earliest_free_slot_in_preference_order(
    route: str, a_busy: bool, b_busy: bool, jobs: int, expected: list[tuple[str, str]]
) -> None:
    def identical(name: str, busy: bool) -> PlanGpu:
        return gpu(name, free=0, busy=(5.0,)) if busy else gpu(name)

    gpus = [identical("fast", a_busy), identical("slow", b_busy)]
    waiting = [job(f"j{i}", age_s=10.0 - i, route=route) for i in range(jobs)]

    assert keys_and_gpus(starts_of(waiting, gpus, ROUTES, now=NOW, policy=POLICY)) == expected


def test_plan_without_samples_every_speed_is_the_prior_and_preference_decides() -> None:
    prior = estimate(SpeedStats(), prior=DEFAULT_PRIOR)
    gpus = [gpu("slow", speed=prior), gpu("fast", speed=prior)]

    starts = starts_of([job("j")], gpus, ROUTES, now=NOW, policy=POLICY)

    assert prior == DEFAULT_PRIOR
    assert keys_and_gpus(starts) == [("j", "fast")]


@pytest.mark.parametrize(
    ("rank", "age_s", "expected"),
    [
        (NORMAL, 29.9, NORMAL),
        (NORMAL, 30.0, HIGH),
        (LOW, 45.0, HIGH),
        (HIGH, 45.0, HIGH),
        (BATCH, 30.0, BATCH),
        (BATCH, 3600.0, BATCH),
    ],
)
def test_effective_rank_ages_interactive_jobs_to_high_but_never_batch(
    rank: int, age_s: float, expected: int
) -> None:
    waiting = job("j", rank=rank, age_s=age_s)

    assert effective_rank(waiting, now=NOW, aging_s=POLICY.aging_s) == expected


@pytest.mark.parametrize(
    ("older", "expected_first"),
    [
        (job("normal", rank=NORMAL, age_s=29.0), "high"),
        (job("normal", rank=NORMAL, age_s=31.0), "normal"),  # aged: high, and older
        (job("batch", rank=BATCH, age_s=999.0), "high"),
    ],
)
def test_plan_gives_the_one_free_slot_by_class_after_aging(
    older: WaitingJob, expected_first: str
) -> None:
    waiting = [older, job("high", rank=HIGH, age_s=1.0)]

    starts = starts_of(waiting, [gpu("fast")], ROUTES, now=NOW, policy=POLICY)

    assert keys_and_gpus(starts) == [(expected_first, "fast")]


@pytest.mark.parametrize(
    ("interactive_route", "expected"),
    [
        (None, [("batch", "slow")]),  # nothing interactive waits: batch fills the idle slot
        ("default", []),  # held for the busy fast GPU, it still keeps its route's batch out
        ("slow-only", [("normal", "slow")]),  # another route's job goes first, by class
        ("reversed", [("batch", "slow")]),  # another route's job held for fast: batch goes
    ],
)
def test_plan_starts_no_batch_job_of_a_route_while_an_interactive_one_waits(
    interactive_route: str | None, expected: list[tuple[str, str]]
) -> None:
    gpus = [gpu("fast", free=0, busy=(1.0,)), gpu("slow", speed=SLOW)]
    waiting = [job("batch", rank=BATCH, age_s=60.0, max_tokens=10)]
    if interactive_route is not None:
        waiting.append(job("normal", route=interactive_route, max_tokens=1000))

    starts = starts_of(waiting, gpus, ROUTES, now=NOW, policy=POLICY)

    assert keys_and_gpus(starts) == expected


def test_plan_names_the_first_job_reserved_on_each_busy_gpu() -> None:
    gpus = [gpu("fast", free=0, busy=(2.0,)), gpu("slow", free=0, busy=(1.0,), speed=SLOW)]
    waiting = [job("long", age_s=3.0, max_tokens=1000), job("short", age_s=2.0, max_tokens=10),
               job("later", age_s=1.0, max_tokens=10)]  # fmt: skip

    planned = plan(waiting, gpus, ROUTES, now=NOW, policy=POLICY)

    assert planned.starts == []
    # long: fast frees at 2 s, ends at 12.1 s (slow: 51.1 s); short: slow frees at 1 s, ends
    # 1.6 s; later: slow again after short (2.2 s) or fast after long: slow
    assert planned.next_on == {"fast": Start("long", "fast", NOW + 2.0 + 0.1 + 10.0),
                               "slow": Start("short", "slow", NOW + 1.0 + 0.1 + 0.5)}  # fmt: skip
    assert planned.next_on["slow"].planned_start == NOW + 1.0


def test_plan_reserves_nothing_on_a_gpu_whose_next_job_starts_now() -> None:
    planned = plan([job("only")], [gpu("fast"), gpu("slow", speed=SLOW)], ROUTES, now=NOW,
                         policy=POLICY)  # fmt: skip

    assert keys_and_gpus(planned.starts) == [("only", "fast")]
    assert planned.next_on == {}


def test_plan_higher_class_reserves_first_so_a_lower_one_cannot_take_its_slot() -> None:
    gpus = [gpu("fast", free=0, busy=(1.0,)), gpu("slow", speed=SLOW)]
    waiting = [job("normal", age_s=5.0, max_tokens=10), job("high", rank=HIGH, max_tokens=10)]

    starts = starts_of(waiting, gpus, ROUTES, now=NOW, policy=POLICY)

    # high: slow free now ends at 0.6 s, fast at 1.2 s: takes slow; normal then waits for fast
    assert keys_and_gpus(starts) == [("high", "slow")]


@pytest.mark.parametrize(("age_s", "expected"), [(19.9, []), (20.0, [("long", "slow")])])
def test_plan_job_waiting_max_hold_takes_the_earliest_start(
    age_s: float, expected: list[tuple[str, str]]
) -> None:
    gpus = [gpu("fast", free=0, busy=(2.0,)), gpu("slow", speed=SLOW)]

    starts = starts_of([job("long", age_s=age_s, max_tokens=1000)], gpus, ROUTES, now=NOW,
                  policy=POLICY)  # fmt: skip

    assert keys_and_gpus(starts) == expected


@pytest.mark.parametrize(("age_s", "expected"), [(10.0, []), (25.0, [("next", "spare")])])
def test_plan_held_job_reserves_the_earliest_start_even_on_a_slower_gpu(
    age_s: float, expected: list[tuple[str, str]]
) -> None:
    gpus = [gpu("fast", free=0, busy=(9.0,)), gpu("slow", free=0, busy=(3.0,), speed=SLOW),
            gpu("spare", speed=replace(SLOW, decode_s_per_token=0.59))]  # fmt: skip
    routes = {"default": ["fast", "slow"], "all": ["fast", "slow", "spare"]}
    waiting = [job("first", age_s=age_s, max_tokens=1000),
               job("next", age_s=1.0, route="all", max_tokens=10)]  # fmt: skip

    # first reserves fast (ends at 19.1 s), or when held slow (it frees first, at 3 s); next
    # then waits for slow (ends at 3.6 s) or, slow taken, starts on spare (6 s) before fast (9.2 s)
    assert keys_and_gpus(starts_of(waiting, gpus, routes, now=NOW, policy=POLICY)) == expected


@pytest.mark.parametrize(
    "closed",
    [gpu("fast", can_take=False), gpu("fast", free=0), gpu("fast", busy=(1.0,), can_take=False)],
)
def test_plan_never_plans_a_gpu_that_cannot_take_or_has_no_slot(closed: PlanGpu) -> None:
    gpus = [closed, gpu("slow", free=0, busy=(60.0,), speed=SLOW)]

    assert starts_of([job("j")], gpus, ROUTES, now=NOW, policy=POLICY) == []


def test_plan_down_preferred_gpu_sends_the_job_to_the_next_one() -> None:
    gpus = [gpu("fast", can_take=False), gpu("slow", speed=SLOW)]

    starts = starts_of([job("j")], gpus, ROUTES, now=NOW, policy=POLICY)

    assert keys_and_gpus(starts) == [("j", "slow")]


def test_plan_starts_no_more_jobs_on_a_gpu_than_its_free_slots() -> None:
    waiting = [job(f"j{i}", age_s=10.0 - i, route="slow-only") for i in range(5)]

    starts = starts_of(waiting, [gpu("slow", free=2, busy=(1.0,))], ROUTES, now=NOW, policy=POLICY)

    assert keys_and_gpus(starts) == [("j0", "slow"), ("j1", "slow")]


def test_plan_considers_only_the_window_of_oldest_jobs() -> None:
    waiting = [job(f"j{i}", age_s=10.0 - i) for i in range(3)]
    policy = replace(POLICY, window=2)

    starts = starts_of(list(reversed(waiting)), [gpu("fast", free=3)], ROUTES, now=NOW,
                       policy=policy)  # fmt: skip

    assert keys_and_gpus(starts) == [("j0", "fast"), ("j1", "fast")]


def test_plan_unknown_max_tokens_uses_the_default_output_length() -> None:
    policy = replace(POLICY, default_output_tokens=50)

    (start,) = starts_of([job("j", max_tokens=None)], [gpu("fast")], ROUTES, now=NOW, policy=policy)

    assert start.predicted_end == pytest.approx(NOW + 0.1 + 50 * 0.01)


def test_plan_job_of_an_unknown_route_is_not_planned() -> None:
    starts = starts_of([job("j", route="nowhere")], [gpu("fast")], ROUTES, now=NOW, policy=POLICY)

    assert starts == []


# --- slot_free_times ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("slots", "ours", "running", "waiting", "expected"),
    [
        (4, [], None, None, (4, ())),
        (4, [3.0], 1, 0, (3, (3.0,))),
        (4, [3.0], 2, 0, (2, (2.0, 3.0))),  # one direct request, assumed half done (4 s mean)
        (4, [-1.0], 1, 0, (3, (0.0,))),  # overdue: ends now
        (2, [3.0], 4, 0, (0, (2.0, 3.0))),  # 4 running on 2 slots: ours frees after 2 end
        (2, [3.0], 1, 1, (0, (3.0, 4.0))),  # a request waiting inside takes the free slot
        (2, [3.0], 2, 2, (0, (6.0, 7.0))),  # waiting ones queue behind the running ones
        (1, [], 0, 3, (0, (12.0,))),
        (0, [], 5, 5, (0, ())),
    ],
)
def test_slot_free_times_counts_direct_and_waiting_engine_requests(
    slots: int,
    ours: list[float],
    running: int | None,
    waiting: int | None,
    expected: tuple[int, tuple[float, ...]],
) -> None:
    free_now, busy = slot_free_times(slots=slots, ours=[NOW + end for end in ours],
                                     engine_running=running, engine_waiting=waiting,
                                     mean_duration_s=4.0, now=NOW)  # fmt: skip

    assert (free_now, tuple(end - NOW for end in busy)) == expected


def test_slot_free_times_direct_traffic_delays_a_gpu_in_the_plan() -> None:
    quiet = slot_free_times(slots=1, ours=[], engine_running=0, engine_waiting=0,
                            mean_duration_s=4.0, now=NOW)  # fmt: skip
    direct = slot_free_times(slots=1, ours=[], engine_running=1, engine_waiting=0,
                             mean_duration_s=4.0, now=NOW)  # fmt: skip
    gpus = [PlanGpu("fast", True, *direct, FAST), PlanGpu("slow", True, *quiet, SLOW)]

    starts = starts_of([job("j", max_tokens=10)], gpus, ROUTES, now=NOW, policy=POLICY)

    assert keys_and_gpus(starts) == [("j", "slow")]


# --- speed model --------------------------------------------------------------------------------

TRUE = Speed(base_s=0.2, prefill_s_per_token=0.001, decode_s_per_token=0.02)


def synthetic(speed: Speed, rng: random.Random, *, streamed: bool = True) -> Sample:
    """A sample drawn from `speed` with ±2 % noise, prompts 100..2000, outputs 10..300."""
    prompt, completion = rng.randint(100, 2000), rng.randint(10, 300)
    ttft = (speed.base_s + speed.prefill_s_per_token * prompt) * rng.uniform(0.98, 1.02)
    decode = speed.decode_s_per_token * completion * rng.uniform(0.98, 1.02)
    return Sample(prompt, completion, ttft + decode, ttft if streamed else None)


def learned(
    samples: list[Sample], *, stats: SpeedStats | None = None, prior: Speed = DEFAULT_PRIOR
) -> SpeedStats:
    """The stats after observing `samples` one second apart."""
    stats = stats or SpeedStats()
    for i, sample in enumerate(samples):
        stats = observe(stats, sample, now=NOW + i, prior=prior)
    return stats


def test_estimate_learns_a_linear_model_from_streamed_samples() -> None:
    rng = random.Random(1)

    speed = estimate(learned([synthetic(TRUE, rng) for _ in range(40)]), prior=DEFAULT_PRIOR)

    assert speed.base_s == pytest.approx(TRUE.base_s, rel=0.1)
    assert speed.prefill_s_per_token == pytest.approx(TRUE.prefill_s_per_token, rel=0.05)
    assert speed.decode_s_per_token == pytest.approx(TRUE.decode_s_per_token, rel=0.03)
    assert speed.samples == pytest.approx(10.0, rel=0.02)  # 1 / (1 - decay)


def test_estimate_learns_decode_and_start_from_non_streamed_samples() -> None:
    rng = random.Random(2)
    samples = [synthetic(TRUE, rng, streamed=False) for _ in range(40)]

    speed = estimate(learned(samples, prior=TRUE), prior=TRUE)

    assert speed.decode_s_per_token == pytest.approx(TRUE.decode_s_per_token, rel=0.03)
    assert speed.base_s == pytest.approx(TRUE.base_s, rel=0.25)
    assert speed.prefill_s_per_token == TRUE.prefill_s_per_token, "no streamed sample: prior's"


def test_a_fast_fleet_that_never_streams_learns_its_real_start_not_the_prior() -> None:
    """Answers that start in 20 ms (the prior says 300 ms) and decode 1,000 tokens/s."""
    fast = Speed(base_s=0.02, prefill_s_per_token=0.0, decode_s_per_token=0.001)
    rng = random.Random(7)
    samples = [synthetic(fast, rng, streamed=False) for _ in range(40)]
    stripped = [replace(sample, prompt_tokens=0) for sample in samples]  # prompts unknown

    speed = estimate(learned(stripped), prior=DEFAULT_PRIOR)

    assert speed.base_s == pytest.approx(0.02, abs=0.01)
    assert speed.decode_s_per_token == pytest.approx(0.001, rel=0.05)


def test_predicted_duration_matches_the_learned_model_within_a_few_percent() -> None:
    rng = random.Random(3)
    speed = estimate(learned([synthetic(TRUE, rng) for _ in range(40)]), prior=DEFAULT_PRIOR)

    for prompt, output in [(100, 10), (500, 100), (2000, 300)]:
        truth = predicted_duration_s(TRUE, prompt_tokens=prompt, output_tokens=output)
        assert predicted_duration_s(
            speed, prompt_tokens=prompt, output_tokens=output
        ) == pytest.approx(truth, rel=0.04)


def test_estimate_follows_a_changed_speed_within_thirty_samples() -> None:
    rng = random.Random(4)
    slower = replace(TRUE, decode_s_per_token=0.04)
    stats = learned([synthetic(TRUE, rng) for _ in range(40)])

    stats = learned([synthetic(slower, rng) for _ in range(30)], stats=stats)

    assert estimate(stats, prior=DEFAULT_PRIOR).decode_s_per_token == pytest.approx(0.04, rel=0.05)


def test_estimate_keeps_the_prior_slope_when_prompts_did_not_vary() -> None:
    samples = [Sample(500, 100, 0.9 + 2.0, 0.9) for _ in range(10)]

    speed = estimate(learned(samples), prior=DEFAULT_PRIOR)

    assert speed.prefill_s_per_token == DEFAULT_PRIOR.prefill_s_per_token
    assert speed.base_s == pytest.approx(0.9 - 500 * DEFAULT_PRIOR.prefill_s_per_token)
    assert speed.decode_s_per_token == pytest.approx(0.02)


@pytest.mark.parametrize("count", [0, 1, 2])
def test_estimate_is_the_prior_while_samples_are_few(count: int) -> None:
    samples = [Sample(100 * i, 50, 9.0, 1.0) for i in range(count)]

    weight = sum(0.9**age for age in range(count))

    assert estimate(learned(samples), prior=DEFAULT_PRIOR) == replace(DEFAULT_PRIOR, samples=weight)


def test_fleet_speeds_takes_an_unlearned_gpu_to_be_as_fast_as_the_fastest_learned_one() -> None:
    """Optimism explores: a GPU with two samples is planned at the fastest learned speed, not at
    the prior (here 25 times slower than the fleet), so it gets the jobs it needs to learn."""
    rng = random.Random(11)
    fast = Speed(base_s=0.01, prefill_s_per_token=0.0, decode_s_per_token=0.001)
    slower = replace(fast, decode_s_per_token=0.002)
    stats = {
        "fast": learned([synthetic(fast, rng) for _ in range(20)]),
        # never streamed, every answer 100 tokens: its start time is the prior's to give
        "slower": learned([Sample(0, 100, 0.21, None) for _ in range(10)]),
        "new": learned([synthetic(slower, rng) for _ in range(2)]),
    }

    speeds = fleet_speeds(stats, prior=DEFAULT_PRIOR)

    assert speeds["new"] == replace(speeds["fast"], samples=stats["new"].answer.weight)
    for learnt in ("fast", "slower"):  # learnt: what their samples do not teach, the prior's
        assert speeds[learnt] == estimate(stats[learnt], prior=DEFAULT_PRIOR)


def test_fleet_speeds_keep_to_the_prior_until_some_gpu_has_learned() -> None:
    stats = {"a": SpeedStats(), "b": learned([Sample(10, 50, 1.0, None)] * 2)}

    speeds = fleet_speeds(stats, prior=DEFAULT_PRIOR)

    assert [replace(speed, samples=0.0) for speed in speeds.values()] == [DEFAULT_PRIOR] * 2


def test_an_unlearned_gpu_gets_jobs_from_the_plan_once_another_gpu_has_learned() -> None:
    """On the fast fleet the prior (25 s per 1,000 tokens) would hold every job for the learned
    GPU; with `fleet_speeds` the unlearned one takes a job as soon as the learned one is busy."""
    rng = random.Random(12)
    fast = Speed(base_s=0.01, prefill_s_per_token=0.0, decode_s_per_token=0.001)
    stats = {"fast": learned([synthetic(fast, rng) for _ in range(20)]), "slow": SpeedStats()}
    policy = scaled_policy(POLICY, typical_s=0.14)

    def planned(speeds: dict[str, Speed]) -> list[tuple[str, str]]:
        gpus = [gpu("fast", free=0, busy=(0.05,), speed=speeds["fast"]),
                gpu("slow", free=1, speed=speeds["slow"])]  # fmt: skip
        jobs = [job("j", max_tokens=128)]
        return keys_and_gpus(starts_of(jobs, gpus, ROUTES, now=NOW, policy=policy))

    assert planned(fleet_speeds(stats, prior=DEFAULT_PRIOR)) == [("j", "slow")]
    assert planned({name: estimate(item, prior=DEFAULT_PRIOR) for name, item in stats.items()}
                   ) == [], "the fixed prior starves the unlearned GPU"  # fmt: skip


def test_speed_stats_round_trip_through_fields() -> None:
    stats = learned([synthetic(TRUE, random.Random(5)) for _ in range(7)])

    fields = stats.to_fields()

    assert set(fields) >= {"ttft_weight", "answer_weight", "updated_at"}
    assert all(isinstance(value, str) for value in fields.values())
    assert SpeedStats.from_fields(fields) == stats


@pytest.mark.parametrize(
    "damage",
    [
        {"answer_weight": None},
        {"answer_weight": "fast"},
        {"answer_xx": "nan"},
        {"ttft_y": "inf"},
        {"ttft_weight": "-1"},
        {"updated_at": ""},
    ],
)
def test_speed_stats_from_garbage_fields_are_empty(damage: dict[str, str | None]) -> None:
    stats = learned([synthetic(TRUE, random.Random(6)) for _ in range(5)])
    fields: dict[str, str | None] = {**stats.to_fields(), **damage}
    stored = {name: value for name, value in fields.items() if value is not None}

    assert SpeedStats.from_fields(stored) == SpeedStats()


@pytest.mark.parametrize(
    "sample",
    [
        Sample(100, 10, 0.0, None),
        Sample(100, 10, -3.0, 0.5),
        Sample(100, 10, math.nan, 0.5),
        Sample(100, 10, math.inf, None),
        Sample(100, 10, 1e300, 1.0),
    ],
)
def test_observe_ignores_a_sample_without_a_sound_duration(sample: Sample) -> None:
    assert observe(SpeedStats(), sample, now=NOW) == SpeedStats()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(-10, 100_000),
            st.integers(-10, 10_000),
            st.floats(allow_nan=True, allow_infinity=True),
            st.none() | st.floats(allow_nan=True, allow_infinity=True),
        ),
        max_size=30,
    )
)
def test_estimate_is_never_negative_or_nan(
    raw: list[tuple[int, int, float, float | None]],
) -> None:
    stats = learned([Sample(*values) for values in raw])

    speed = estimate(SpeedStats.from_fields(stats.to_fields()), prior=DEFAULT_PRIOR)

    parts = [speed.base_s, speed.prefill_s_per_token, speed.decode_s_per_token, speed.samples]
    assert all(math.isfinite(part) and part >= 0 for part in parts)
    assert speed.decode_s_per_token >= DECODE_RANGE_S_PER_TOKEN[0]


# --- plan properties ----------------------------------------------------------------------------

GPU_NAMES = ["a", "b", "c", "d"]
PROPERTY_ROUTES = {"r0": ["a", "b"], "r1": ["c"], "r2": ["d", "a", "c"], "r3": []}


@st.composite
def plan_inputs(draw: st.DrawFn) -> tuple[list[WaitingJob], list[PlanGpu]]:
    """Random waiting jobs and GPUs for the plan's invariants."""
    jobs = [
        WaitingJob(f"k{i}", draw(st.sampled_from([*sorted(PROPERTY_ROUTES), "none"])),
                   draw(st.integers(0, 3)), NOW - draw(st.floats(0, 120)),
                   draw(st.integers(0, 5000)), draw(st.none() | st.integers(1, 2000)))
        for i in range(draw(st.integers(0, 40)))
    ]  # fmt: skip
    speeds = st.builds(Speed, st.floats(0, 2), st.floats(0, 0.01), st.floats(0.0002, 0.2))
    gpus = [
        PlanGpu(name, draw(st.booleans()), draw(st.integers(0, 4)),
                tuple(NOW + t for t in draw(st.lists(st.floats(-5, 60), max_size=4))),
                draw(speeds))
        for name in GPU_NAMES
    ]  # fmt: skip
    return jobs, gpus


@settings(max_examples=300, deadline=None)
@given(plan_inputs(), st.integers(1, 64), st.floats(0, 30))
def test_plan_invariants(
    inputs: tuple[list[WaitingJob], list[PlanGpu]], window: int, max_hold_s: float
) -> None:
    jobs, gpus = inputs
    policy = PlanPolicy(window=window, aging_s=30.0, max_hold_s=max_hold_s)

    starts = starts_of(jobs, gpus, PROPERTY_ROUTES, now=NOW, policy=policy)

    by_key = {waiting.key: waiting for waiting in jobs}
    by_name = {plan_gpu.name: plan_gpu for plan_gpu in gpus}
    assert len({start.key for start in starts}) == len(starts) <= window
    for start in starts:
        assert start.gpu in PROPERTY_ROUTES[by_key[start.key].route]
        assert by_name[start.gpu].can_take
        assert by_name[start.gpu].free_now > 0
        assert start.predicted_end >= NOW
    for plan_gpu in gpus:
        assert sum(start.gpu == plan_gpu.name for start in starts) <= plan_gpu.free_now


# --- job size -----------------------------------------------------------------------------------

SYSTEM_MESSAGE = {"role": "system", "content": "abcd"}
MIXED_PARTS_MESSAGE = {
    "role": "user",
    "content": [{"type": "text", "text": "x" * 40}, {"type": "image_url", "image_url": {}}],
}


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"messages": [{"role": "user", "content": "x" * 400}]}, (100, None)),
        ({"messages": [SYSTEM_MESSAGE, MIXED_PARTS_MESSAGE], "max_tokens": 64}, (11, 64)),
        ({"prompt": "y" * 10, "max_tokens": 5}, (3, 5)),
        ({"prompt": ["abcd", "abcdefgh"]}, (3, None)),
        ({"prompt": [1, 2, 3, 4, 5]}, (5, None)),  # token ids
        ({"input": ["a" * 8, "b" * 8]}, (4, None)),
        ({"messages": [], "max_completion_tokens": 9, "max_tokens": 99}, (0, 9)),
        ({"max_tokens": 0}, (0, None)),
        ({"max_tokens": True}, (0, None)),
        ({"max_tokens": "64"}, (0, None)),
        ({"max_completion_tokens": -1, "max_tokens": 7}, (0, 7)),
        ({"messages": "not a list", "prompt": {"odd": 1}}, (3, None)),
        ({}, (0, None)),
    ],
)
def test_job_size_estimates_prompt_tokens_and_reads_max_tokens(
    payload: dict[str, Any], expected: tuple[int, int | None]
) -> None:
    assert job_size(payload) == expected


# --- Start delay and scale ---------------------------------------------------------------------


def test_a_start_delay_sends_the_job_to_a_gpu_without_one() -> None:
    cold = replace(gpu("fast"), start_delay_s=30.0)  # its model is not loaded
    starts = starts_of([job("a")], [cold, gpu("slow", speed=SLOW)], ROUTES, now=NOW, policy=POLICY)
    assert [(start.key, start.gpu) for start in starts] == [("a", "slow")]
    assert starts[0].predicted_end == pytest.approx(NOW + 0.1 + 100 * 0.05)


def test_typical_duration_is_the_mean_over_gpus_and_the_prior_without_any() -> None:
    assert typical_duration_s([FAST, SLOW], output_tokens=100) == pytest.approx((1.1 + 5.1) / 2)
    prior = predicted_duration_s(DEFAULT_PRIOR, prompt_tokens=0, output_tokens=100)
    assert typical_duration_s([], output_tokens=100) == pytest.approx(prior)


@pytest.mark.parametrize("scale", [0.1, 1.0, 10.0])
def test_a_scaled_policy_plans_a_fleet_the_same_at_any_time_scale(scale: float) -> None:
    """The same fleet and jobs with every duration times `scale` get the same plan."""

    def scaled(speed: Speed) -> Speed:
        return Speed(speed.base_s * scale, 0.0, speed.decode_s_per_token * scale)

    speeds = {"fast": scaled(FAST), "slow": scaled(SLOW)}
    gpus = [gpu("fast", free=0, busy=(1.0 * scale,), speed=speeds["fast"]),
            gpu("slow", speed=speeds["slow"])]  # fmt: skip
    jobs = [job("long", max_tokens=250), job("short", max_tokens=20)]
    typical_s = typical_duration_s(list(speeds.values()), output_tokens=128)
    policy = scaled_policy(replace(POLICY, max_hold_s=1e9), typical_s=typical_s)

    starts = starts_of(jobs, gpus, ROUTES, now=NOW, policy=policy)

    assert [(start.key, start.gpu) for start in starts] == [("short", "slow")], (
        "the long job waits for the fast GPU at every scale, the short one takes the slow slot"
    )


def test_a_gpu_full_of_direct_traffic_still_gets_a_job_it_finishes_first_on() -> None:
    """The engine queues what is sent beyond its slots: the job is sent now, not held."""
    direct = replace(gpu("fast", free=0, busy=(0.5,)), headroom=1)  # its slot: a direct request
    ours = gpu("slow", free=0, busy=(0.5,), speed=SLOW)  # our own job holds the slot

    starts = starts_of([job("a"), job("b")], [direct, ours], ROUTES, now=NOW, policy=POLICY)

    assert keys_and_gpus(starts) == [("a", "fast")], "b waits: nothing more can be sent"
    assert starts[0].predicted_end == pytest.approx(NOW + 0.5 + 0.1 + 100 * 0.01)
