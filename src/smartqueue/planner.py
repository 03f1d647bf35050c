"""Pure dispatch planning: which waiting job starts on which GPU, by predicted finish time.

A job's duration on a GPU is predicted from a learned linear model (docs/scheduling.md):

    duration = base_s + prefill_s_per_token · prompt_tokens + decode_s_per_token · output_tokens

`plan` orders a bounded window of waiting jobs by class (aged jobs count as high) and age, then
gives each in turn the slot, on one of its route's GPUs, where it would finish first, and
reserves that slot until then. Only jobs whose chosen slot is free now start; a long job may
thus wait a moment for a fast GPU while a short one behind it takes a slow free slot, instead of
the long one blocking the slow slot for minutes. A job that has waited `max_hold_s` takes the
earliest slot instead, so holding for speed never delays a job by more than that (as far as the
predictions hold).

Speeds are learned per GPU from completed jobs (`observe`) as decayed sums of two small
regressions (`SpeedStats`, shared by replicas as a Redis hash through `to_fields`) and read back
with `estimate`; until a GPU has enough samples, `fleet_speeds` takes it to be as fast as the
fastest learned GPU (`DEFAULT_PRIOR` while none has learned), so that it is explored.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from smartqueue.models import DISPATCH_ORDER, Priority

BATCH_RANK = DISPATCH_ORDER.index(Priority.BATCH)  # batch work is never promoted by aging
CHARS_PER_TOKEN = 4  # the usual rule of thumb for English text and code
SAMPLE_DECAY = 0.9  # weight kept by the older samples at each new one: ~10 samples dominate
MIN_SAMPLE_WEIGHT = 3.0  # decayed sample weight below which a regression keeps to the prior
MAX_SAMPLE_DURATION_S = 86_400.0  # a longer "duration" is a clock error, not a speed
MIN_PROMPT_SPREAD_TOKENS = 64.0  # prompt sizes must vary this much (std) to fit a prefill slope
MIN_OUTPUT_SPREAD_TOKENS = 16.0  # answer lengths must vary this much (std) to fit a decode slope
REFERENCE_OUTPUT_TOKENS = 128  # the answer length GPUs are compared at in `fleet_speeds`
BASE_RANGE_S = (0.0, 60.0)
PREFILL_RANGE_S_PER_TOKEN = (0.0, 0.01)
DECODE_RANGE_S_PER_TOKEN = (0.0002, 2.0)


@dataclass(frozen=True)
class Speed:
    """How fast a GPU answers: ttft = base + prefill·prompt; then decode per output token."""

    base_s: float
    prefill_s_per_token: float
    decode_s_per_token: float
    samples: float = 0.0  # decayed weight of the samples behind the decode speed


DEFAULT_PRIOR = Speed(base_s=0.3, prefill_s_per_token=0.0005, decode_s_per_token=0.025)
"""A mid-sized model on one consumer GPU: 300 ms to start, 2000 prompt tokens/s, 40 tokens/s."""


def predicted_duration_s(speed: Speed, *, prompt_tokens: int, output_tokens: int) -> float:
    """Seconds from sending a request to its complete answer."""
    ttft_s = speed.base_s + speed.prefill_s_per_token * max(0, prompt_tokens)
    return ttft_s + speed.decode_s_per_token * max(0, output_tokens)


# --- Learning speeds --------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One completed job on a GPU, for learning its speed."""

    prompt_tokens: int
    completion_tokens: int
    duration_s: float  # from sending the request to the complete answer
    first_chunk_s: float | None  # time to the first streamed chunk; None when not streamed


@dataclass(frozen=True)
class Line:
    """Decayed sums for a least-squares line y = a + b·x: weight, Σx, Σx², Σy, Σxy, each
    weighted by `SAMPLE_DECAY` per later point."""

    weight: float = 0.0
    x: float = 0.0
    xx: float = 0.0
    y: float = 0.0
    xy: float = 0.0

    def add(self, x: float, y: float) -> Line:
        """The sums with the older points decayed and (x, y) added."""
        keep = SAMPLE_DECAY
        return Line(keep * self.weight + 1.0, keep * self.x + x, keep * self.xx + x * x,
                    keep * self.y + y, keep * self.xy + x * y)  # fmt: skip

    def means(self) -> tuple[float, float, float]:
        """(mean x, mean y, variance of x); only meaningful with some weight."""
        mean_x, mean_y = self.x / self.weight, self.y / self.weight
        return mean_x, mean_y, self.xx / self.weight - mean_x * mean_x

    def slope(self) -> float:
        """The fitted slope (the caller checks the variance of x first)."""
        mean_x, mean_y, variance = self.means()
        return (self.xy / self.weight - mean_x * mean_y) / variance


@dataclass(frozen=True)
class SpeedStats:
    """One GPU's two decayed regressions (`Line`s).

    - `ttft`: time to first token against prompt tokens, from streamed samples;
    - `answer`: the answer's time less its prompt's prefill against completion tokens, from
      every sample: its slope is the decode time per token and its intercept the start time, so
      a fleet that never streams still learns when its answers start.
    """

    ttft: Line = Line()
    answer: Line = Line()
    updated_at: float = 0.0

    def to_fields(self) -> dict[str, str]:
        """The stats as a Redis hash (exact float text): `ttft_weight`, `answer_xy`, ..."""
        stored = {f"{name}_{item.name}": repr(float(getattr(line, item.name)))
                  for name, line in (("ttft", self.ttft), ("answer", self.answer))
                  for item in fields(Line)}  # fmt: skip
        return {**stored, "updated_at": repr(float(self.updated_at))}

    @classmethod
    def from_fields(cls, stored: Mapping[str, str]) -> SpeedStats:
        """The stats read back from a hash; empty stats when any field is missing or garbage."""
        values: dict[str, float] = {}
        names = [f"{line}_{item.name}" for line in ("ttft", "answer") for item in fields(Line)]
        for name in [*names, "updated_at"]:
            value = _finite_float(stored.get(name))
            if value is None or value < 0:
                return cls()
            values[name] = value

        def line(prefix: str) -> Line:
            return Line(*(values[f"{prefix}_{item.name}"] for item in fields(Line)))

        return cls(line("ttft"), line("answer"), values["updated_at"])


def _finite_float(text: object) -> float | None:
    """The finite float `text` spells, else None."""
    if not isinstance(text, str | bytes):
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def observe(
    stats: SpeedStats, sample: Sample, *, now: float, prior: Speed = DEFAULT_PRIOR
) -> SpeedStats:
    """The stats with `sample` added and each regression's older samples decayed.

    A streamed sample also teaches the time to first token. The prompt's prefill is taken off
    the answer's time with the prefill slope learned so far (or the prior's). A sample with a
    non-finite or non-positive duration is ignored.
    """
    if not _is_sound(sample):
        return stats
    ttft_s = _observed_ttft_s(sample)
    learned = _learn_ttft(stats, sample.prompt_tokens, ttft_s) if ttft_s is not None else stats
    prefill = estimate(stats, prior=prior).prefill_s_per_token
    start_free_s = sample.duration_s - prefill * max(0, sample.prompt_tokens)
    learned = _learn_answer(learned, sample.completion_tokens, start_free_s)
    return replace(learned, updated_at=now)


def _is_sound(sample: Sample) -> bool:
    """A sample whose numbers can be learned from."""
    return 0 < sample.duration_s <= MAX_SAMPLE_DURATION_S


def _observed_ttft_s(sample: Sample) -> float | None:
    """The sample's time to first chunk, within its duration; None when unknown."""
    first = sample.first_chunk_s
    if first is None or not math.isfinite(first) or first < 0:
        return None
    return min(first, sample.duration_s)


def _learn_ttft(stats: SpeedStats, prompt_tokens: int, ttft_s: float) -> SpeedStats:
    """The stats with one streamed sample's time to first token added."""
    return replace(stats, ttft=stats.ttft.add(float(max(0, prompt_tokens)), ttft_s))


def _learn_answer(stats: SpeedStats, completion_tokens: int, answer_s: float) -> SpeedStats:
    """The stats with one answer's time added (nothing to learn from an empty answer)."""
    if completion_tokens <= 0:
        return stats
    return replace(stats, answer=stats.answer.add(float(completion_tokens), max(0.0, answer_s)))


def estimate(stats: SpeedStats, *, prior: Speed) -> Speed:
    """The learned speed, each part from the prior while its samples are too few.

    Time to first token: the streamed samples' line when there are enough, else the answer
    line's intercept, else the prior. Decode: the answer line's slope when the answers' lengths
    varied, else what is left of their mean time once they started.
    """
    base_s, prefill = _ttft_line(stats, prior=prior)
    streamed = stats.ttft.weight >= MIN_SAMPLE_WEIGHT
    decode = prior.decode_s_per_token
    weight = stats.answer.weight
    if weight >= MIN_SAMPLE_WEIGHT:
        mean_x, mean_y, variance = stats.answer.means()
        if variance >= MIN_OUTPUT_SPREAD_TOKENS**2:
            decode = stats.answer.slope()
            base_s = base_s if streamed else mean_y - decode * mean_x
        elif mean_x > 0:
            start_s = base_s if streamed else min(base_s, mean_y)
            decode = (mean_y - start_s) / mean_x
    return Speed(
        base_s=_clamp(base_s, BASE_RANGE_S),
        prefill_s_per_token=_clamp(prefill, PREFILL_RANGE_S_PER_TOKEN),
        decode_s_per_token=_clamp(decode, DECODE_RANGE_S_PER_TOKEN),
        samples=weight,
    )


def fleet_speeds(stats: Mapping[str, SpeedStats], *, prior: Speed) -> dict[str, Speed]:
    """Every GPU's speed, a GPU with too few samples of its own taken to be as fast as the
    fastest GPU that has enough (or `prior` while none has).

    Optimism is how an unknown GPU gets explored: taken to be fast, it is given jobs, and its
    own samples replace the guess once their decayed weight reaches `MIN_SAMPLE_WEIGHT` (four
    samples). A GPU that has learned keeps `prior` for what its samples do not teach (the
    prefill slope when it never streamed varied prompts). A fixed prior far from the
    fleet's real speed would instead make every unlearned GPU look many times slower (or faster)
    than the learned ones, and the plan would starve it of the jobs it needs to learn.
    """
    learned = {gpu: estimate(item, prior=prior) for gpu, item in stats.items()
               if item.answer.weight >= MIN_SAMPLE_WEIGHT}  # fmt: skip
    fastest = min(learned.values(), default=prior, key=lambda speed: predicted_duration_s(
        speed, prompt_tokens=0, output_tokens=REFERENCE_OUTPUT_TOKENS))  # fmt: skip
    return {gpu: learned[gpu] if gpu in learned else estimate(item, prior=fastest)
            for gpu, item in stats.items()}  # fmt: skip


def _ttft_line(stats: SpeedStats, *, prior: Speed) -> tuple[float, float]:
    """(base, prefill slope) of the time to first token: the prior's slope unless prompts varied."""
    if stats.ttft.weight < MIN_SAMPLE_WEIGHT:
        return prior.base_s, prior.prefill_s_per_token
    mean_x, mean_y, variance = stats.ttft.means()
    slope = prior.prefill_s_per_token
    if variance >= MIN_PROMPT_SPREAD_TOKENS**2:
        slope = stats.ttft.slope()
    slope = _clamp(slope, PREFILL_RANGE_S_PER_TOKEN)
    return mean_y - slope * mean_x, slope


def _clamp(value: float, bounds: tuple[float, float]) -> float:
    """`value` within `bounds`; NaN becomes the lower bound."""
    low, high = bounds
    return low if math.isnan(value) else min(high, max(low, value))


# --- Slots ------------------------------------------------------------------------------------


def slot_free_times(
    *,
    slots: int,
    ours: Sequence[float],
    engine_running: int | None,
    engine_waiting: int | None,
    mean_duration_s: float,
    now: float,
) -> tuple[int, tuple[float, ...]]:
    """(free_now, busy_until) of one GPU's `slots`, counting traffic that bypassed the queue.

    `ours` are the predicted ends of the queue's own jobs on it (an overdue one counts as ending
    now). Requests the engine runs beyond ours came by the direct path: each is assumed half done
    (ends at now + mean/2). When more run than `slots`, a slot frees for us only as the surplus
    finishes. Each request waiting inside the engine then takes the next slot to free, for
    `mean_duration_s`.
    """
    ends = [max(end, now) for end in ours]
    ends += [now + mean_duration_s / 2] * max(0, (engine_running or 0) - len(ends))
    ends = sorted(ends)[max(0, len(ends) - slots) :]  # a surplus beyond `slots` frees none
    free_now = max(0, slots - len(ends))
    times = [now] * free_now + ends
    heapq.heapify(times)
    waiting = max(0, engine_waiting or 0)
    for _ in range(waiting if times else 0):
        heapq.heapreplace(times, times[0] + mean_duration_s)
    still_free = max(0, free_now - waiting)
    return still_free, tuple(sorted(times)[still_free:])


# --- Planning ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class WaitingJob:
    """A job waiting for a GPU, as the planner sees it."""

    key: str  # opaque handle the caller uses to take it (a stream entry)
    route: str
    rank: int  # its class: the index of its priority in smartqueue.models.DISPATCH_ORDER
    enqueued_at: float  # epoch seconds
    prompt_tokens: int  # estimated from the payload (`job_size`); 0 when unknown
    max_tokens: int | None  # the request's max_tokens; None when unknown


@dataclass(frozen=True)
class PlanGpu:
    """One GPU as the planner sees it."""

    name: str
    can_take: bool  # up and its breaker allows a job; never planned otherwise
    free_now: int  # slots free now
    busy_until: tuple[float, ...]  # predicted free times (epoch s) of its occupied slots
    speed: Speed
    start_delay_s: float = 0.0  # added before any job's first token here (a cold model, KV full)
    headroom: int | None = None  # jobs the queue may still send now (None: `free_now`)

    @property
    def sendable(self) -> int:
        """Jobs the queue may send now: its free slots, and those that direct traffic holds
        (a job sent there waits inside the engine for the first slot to free)."""
        return max(self.free_now, self.headroom if self.headroom is not None else 0)


@dataclass(frozen=True, kw_only=True)
class PlanPolicy:
    """How far `plan` looks ahead and how long speed may delay a job."""

    window: int = 64  # jobs considered per plan
    aging_s: float  # a job (not batch) waiting this long ranks as high
    max_hold_s: float = 20.0  # a job waiting this long takes the earliest slot, fast or not
    default_output_tokens: int = 256  # when max_tokens is unknown
    tie_tolerance_s: float = 0.25  # finishes this close count as equal: route order decides
    min_hold_gain_s: float = 3.0  # a job waits for a busy slot only to finish this much sooner


HOLD_GAIN_PER_TYPICAL = 1.0  # min_hold_gain_s, in typical job times (3 s on the local fleet)
TIE_PER_TYPICAL = 0.08  # tie_tolerance_s, in typical job times (0.25 s on the local fleet)


def typical_duration_s(speeds: Sequence[Speed], *, output_tokens: int) -> float:
    """A typical job's predicted time (empty prompt, `output_tokens`), averaged over GPUs."""
    if not speeds:
        return predicted_duration_s(DEFAULT_PRIOR, prompt_tokens=0, output_tokens=output_tokens)
    times = [predicted_duration_s(speed, prompt_tokens=0, output_tokens=output_tokens)
             for speed in speeds]  # fmt: skip
    return sum(times) / len(times)


def scaled_policy(policy: PlanPolicy, *, typical_s: float) -> PlanPolicy:
    """`policy` with its hold gain and tie tolerance in proportion to a typical job's time, so
    the plan behaves the same on a fleet whose jobs take 100 ms or 100 s."""
    return replace(policy, min_hold_gain_s=HOLD_GAIN_PER_TYPICAL * typical_s,
                   tie_tolerance_s=TIE_PER_TYPICAL * typical_s)  # fmt: skip


@dataclass(frozen=True)
class Start:
    """A job to take now (or, in `Plan.next_on`, once a slot of its GPU frees), with its GPU
    and the predicted end of its answer; `planned_start` is when the plan has it start."""

    key: str
    gpu: str
    predicted_end: float
    planned_start: float = field(default=0.0, compare=False)


@dataclass(frozen=True)
class Plan:
    """What to start now, and per GPU the job planned next on it once one of its busy slots
    frees: a consumer whose job there ends may take that one without planning again."""

    starts: list[Start]
    next_on: dict[str, Start]


@dataclass(order=True)
class _Slot:
    """One slot in the plan: when it frees (now when free now), and whether it is free now."""

    free_at: float
    busy: bool  # at equal times a free-now slot (False) sorts first


def effective_rank(job: WaitingJob, *, now: float, aging_s: float) -> int:
    """The job's class, high (0) once an interactive job has waited `aging_s`."""
    aged = job.rank < BATCH_RANK and now - job.enqueued_at >= aging_s
    return 0 if aged else job.rank


def plan(
    jobs: Sequence[WaitingJob],
    gpus: Sequence[PlanGpu],
    routes: Mapping[str, Sequence[str]],
    *,
    now: float,
    policy: PlanPolicy,
) -> Plan:
    """The jobs to start now, in planning order, each on the GPU where it would finish first,
    and the first job planned on each GPU for a slot busy now.

    Jobs are planned by (class after aging, enqueue time), the first `window` of them; each
    reserves its slot until its predicted end, so later jobs plan around it. Batch jobs fill
    idle capacity only: none of a route starts while an interactive job of that route waits.
    """
    interactive = {job.route for job in jobs if job.rank < BATCH_RANK}
    ordered = sorted(
        (job for job in jobs if job.rank < BATCH_RANK or job.route not in interactive),
        key=lambda job: (effective_rank(job, now=now, aging_s=policy.aging_s), job.enqueued_at),
    )[: max(0, policy.window)]
    slots = {gpu.name: _slots_of(gpu, now=now) for gpu in gpus if gpu.can_take}
    by_name = {gpu.name: gpu for gpu in gpus}
    sendable = {gpu.name: gpu.sendable for gpu in gpus}
    starts: list[Start] = []
    next_on: dict[str, Start] = {}
    for job in ordered:
        names = [name for name in dict.fromkeys(routes.get(job.route, ())) if slots.get(name)]
        if not names:
            continue
        held = now - job.enqueued_at >= policy.max_hold_s
        ends = {name: _finish(job, slots[name][0], by_name[name], policy) for name in names}
        now_ok = [name for name in names if sendable[name] > 0]
        name = _choose(names, ends, slots, now_ok, held=held, policy=policy)
        start = Start(job.key, name, ends[name], planned_start=slots[name][0].free_at)
        heapq.heapreplace(slots[name], _Slot(ends[name], busy=True))  # reserved until its end
        if name in now_ok:
            sendable[name] -= 1
            starts.append(start)
        else:
            next_on.setdefault(name, start)
    return Plan(starts, next_on)


def _slots_of(gpu: PlanGpu, *, now: float) -> list[_Slot]:
    """The GPU's slots as a heap, earliest free first."""
    slots = [_Slot(now, busy=False)] * max(0, gpu.free_now)
    slots += [_Slot(max(end, now), busy=True) for end in gpu.busy_until]
    heapq.heapify(slots)
    return slots


def _finish(job: WaitingJob, slot: _Slot, gpu: PlanGpu, policy: PlanPolicy) -> float:
    """When the job would end if it took `slot` of `gpu`."""
    output = job.max_tokens if job.max_tokens is not None else policy.default_output_tokens
    duration = predicted_duration_s(gpu.speed, prompt_tokens=job.prompt_tokens,
                                    output_tokens=output)  # fmt: skip
    return slot.free_at + gpu.start_delay_s + duration


def _choose(
    names: list[str],
    ends: Mapping[str, float],
    slots: Mapping[str, list[_Slot]],
    free: list[str],
    *,
    held: bool,
    policy: PlanPolicy,
) -> str:
    """The GPU of the earliest finish, unless holding for it gains too little or too late.

    `free` are the GPUs a job may be sent to now. A job held `max_hold_s` takes the earliest
    start (among those, if any); any other job waits for a GPU it cannot be sent to now only to
    finish `min_hold_gain_s` sooner.
    """
    tolerance_s = policy.tie_tolerance_s
    if held:
        starts = {name: slots[name][0].free_at for name in free or names}
        return _first_within(free or names, starts, tolerance_s=tolerance_s)
    best = _first_within(names, ends, tolerance_s=tolerance_s)
    if not free or best in free:
        return best
    best_free = _first_within(free, ends, tolerance_s=tolerance_s)
    return best if ends[best] + policy.min_hold_gain_s < ends[best_free] else best_free


def _first_within(names: list[str], times: Mapping[str, float], *, tolerance_s: float) -> str:
    """The first of `names` (route order) whose time is within `tolerance_s` of the earliest."""
    earliest = min(times[name] for name in names)
    return next(name for name in names if times[name] <= earliest + tolerance_s)


# --- Job size ---------------------------------------------------------------------------------


def job_size(payload: Mapping[str, Any]) -> tuple[int, int | None]:
    """(estimated prompt tokens, max output tokens or None) of an OpenAI request body."""
    counted = 0
    for name in ("messages", "prompt", "input"):
        counted += _tokens_in(payload.get(name))
    limit = None
    for name in ("max_completion_tokens", "max_tokens"):
        value = payload.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            limit = value
            break
    return counted, limit


def _tokens_in(value: object) -> int:
    """Estimated tokens of a prompt, an input, messages or a content (a token id counts 1)."""
    if isinstance(value, str):
        return math.ceil(len(value) / CHARS_PER_TOKEN)
    if isinstance(value, int) and not isinstance(value, bool):
        return 1  # a token id
    if isinstance(value, list):
        return sum(_tokens_in(item) for item in value)
    if isinstance(value, Mapping):
        return _tokens_in(value.get("content")) + _tokens_in(value.get("text"))
    return 0
