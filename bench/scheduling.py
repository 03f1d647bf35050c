"""Benchmark 3: scheduling on simulated fleets, smartqueue vs queue-side balancers and the LP bound.

For each fleet (`bench.fleets`) and scenario — a batch submitted at once (makespan) or Poisson
arrivals at 70 % / 90 % of the fleet's capacity (queue wait and end-to-end latency), each with and
without direct background traffic on the GPUs — every scheduler runs the same jobs
(`max_tokens` uniform in 16..256). smartqueue gets its jobs through `POST /enqueue`; its times
come from the job records (created, started, completed). The stack starts once per fleet: one
copy of the simulated fleet for smartqueue and one for each client-side balancer, so the
balancers, which need no service, run at the same time, each on its own GPUs; smartqueue runs
alone, before or after them (the order alternates by round).
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import httpx

from bench.balancers import (
    ClientQueue,
    Job,
    LeastConnections,
    LowestScore,
    Policy,
    RoundRobin,
    Target,
    Timing,
    send,
)
from bench.config import BenchConfig
from bench.fleet_model import GpuModel, jobs_per_s, makespan_lower_bound
from bench.fleets import FLEETS, FleetSpec, start_copies
from bench.httpload import KEEPALIVE_EXPIRY_S
from bench.procs import LOAD_CPU, NO_BACKPRESSURE, SERVICE_CPU, Processes, Sim
from bench.report import number
from bench.stats import Bar, Section, percentile

SCHEDULERS = ("smartqueue", "least-connections", "round-robin", "lowest-score")
BALANCERS = SCHEDULERS[1:]
BASELINE = "least-connections"
BACKGROUND_SHARE = 0.3
SPEED_CHECK_LIMIT = 0.05
ALONE = f"{BASELINE} alone"
CONCURRENCY_CHECK = "heterogeneous · Poisson 90%"  # where least-connections also runs alone
SLOW_FLEET, SLOW_DIVISOR = "identical", 4  # its Poisson 90 % again, sims this many times slower
TOKENS = (16, 256)
HEADERS = {"X-Syslog-Model": "default"}
T = TypeVar("T")


@dataclass(frozen=True)
class Scenario:
    """A batch (load None) or Poisson arrivals at `load` of capacity, maybe with direct traffic."""

    load: float | None
    background: bool

    @property
    def label(self) -> str:
        """How tables name it."""
        base = "batch" if self.load is None else f"Poisson {self.load:.0%}"
        return base + (" + direct 30%" if self.background else "")


def scenarios(config: BenchConfig, fleet: str) -> list[Scenario]:
    """All six on the heterogeneous fleet (on every fleet in a long run); else batch and 90 %."""
    if fleet == "heterogeneous" or config.every_scenario_on_every_fleet:
        return [Scenario(load, bg) for bg in (False, True) for load in (None, 0.7, 0.9)]
    return [Scenario(None, False), Scenario(0.9, False), Scenario(0.9, True)]


@dataclass
class FleetRun:
    """A running fleet: its spec, one copy of its sims per scheduler, smartqueue's URL."""

    spec: FleetSpec
    sims: dict[str, dict[str, Sim]]
    service_url: str
    speed: float

    def targets(self, scheduler: str) -> list[Target]:
        """The GPUs of `scheduler`'s copy of the fleet as balancer targets, in fleet order."""
        sims = self.sims[scheduler]
        return [
            Target(g.name, sims[g.name].url, sims[g.name].sidecar_url, g.model, g.slots)
            for g in self.spec.gpus
        ]

    @property
    def models(self) -> list[GpuModel]:
        """The GPUs as the LP bound sees them."""
        return gpu_models(self.spec)


def gpu_models(spec: FleetSpec) -> list[GpuModel]:
    """A fleet's GPUs as the LP bound and the capacity formula see them (speed 1)."""
    return [
        GpuModel(
            g.name,
            g.slots,
            g.latency.ttft_base_ms / 1000,
            g.latency.tokens_per_s,
            g.latency.slowdown_per_busy_slot,
        )
        for g in spec.gpus
    ]


def slot_seconds_per_job(spec: FleetSpec) -> float:
    """How long the mix's average job holds a unit of the fleet's capacity, at speed 1."""
    models = gpu_models(spec)
    return sum(m.capacity for m in models) / jobs_per_s(models, mix_tokens(), speed=1)


def fleet_speed(config: BenchConfig, spec: FleetSpec) -> float:
    """`sim_speed` for the heterogeneous fleet; others so their average job lasts as long.

    smartqueue's fixed per-job cost then weighs the same on every fleet (see speed_check).
    """
    reference = slot_seconds_per_job(FLEETS["heterogeneous"]())
    return round(config.sim_speed * slot_seconds_per_job(spec) / reference)


def mix_tokens() -> list[int]:
    """The output lengths capacity is computed for: a large sample of the jobs' mix."""
    return [job.max_tokens for job in make_jobs(1000, rate_per_s=None, seed=99)]


def make_jobs(count: int, *, rate_per_s: float | None, seed: int) -> list[Job]:
    """`count` jobs of random length, all at 0 (batch) or with exponential gaps at `rate_per_s`."""
    draw = random.Random(seed)
    jobs, clock = [], 0.0
    for index in range(count):
        if rate_per_s is not None and index:
            clock += draw.expovariate(rate_per_s)
        jobs.append(Job(index, draw.randint(*TOKENS), clock))
    return jobs


async def drive(
    jobs: list[Job], run_job: Callable[[Job, float], Coroutine[Any, Any, T]]
) -> list[T]:
    """Start each job at its arrival time; the results in job order."""
    start = time.time()
    tasks: list[asyncio.Task[T]] = []
    async with asyncio.TaskGroup() as group:
        for job in jobs:
            due = start + job.arrival_s
            if due > time.time():
                await asyncio.sleep(due - time.time())
            tasks.append(group.create_task(run_job(job, due)))
    return [task.result() for task in tasks]


class SmartqueueClient:
    """Submits through `POST /enqueue`, then reads each job's times from its record."""

    def __init__(self, url: str, client: httpx.AsyncClient) -> None:
        self.url, self.client = url, client

    async def submit(self, job: Job, arrived: float) -> tuple[str, float]:
        """Enqueue; the job id and the arrival time."""
        response = await self.client.post(
            f"{self.url}/enqueue", json=job.body("default"), headers=HEADERS
        )
        response.raise_for_status()
        return str(response.json()["job_id"]), arrived

    async def get_json(self, path: str) -> Any:
        """GET a JSON document, retried on a dropped connection (GET is safe to repeat)."""
        for attempt in range(3):
            try:
                return (await self.client.get(f"{self.url}{path}")).json()
            except httpx.TransportError:
                if attempt == 2:
                    raise
                await asyncio.sleep(0.1)
        raise AssertionError("unreachable")

    async def wait_drained(self) -> None:
        """Until nothing is queued, delayed or in flight."""
        while True:
            overview = await self.get_json("/status")
            if not (overview["depth"]["total"] or overview["in_flight"] or overview["delayed"]):
                return
            await asyncio.sleep(0.05)

    async def timing(self, job_id: str, arrived: float) -> Timing:
        """The job's times once it ended."""
        while True:
            record = await self.get_json(f"/status/{job_id}")
            if record["status"] in ("completed", "dead", "cancelled"):
                ok = record["status"] == "completed"
                started = record.get("started_at") or record["created_at"]
                finished = record.get("completed_at") or time.time()
                return Timing(arrived, started, finished, record.get("gpu") or "?", ok)
            await asyncio.sleep(0.2)

    async def run(self, jobs: list[Job]) -> list[Timing]:
        """Submit at the arrival times, wait for the end, collect the timings."""
        submitted = await drive(jobs, self.submit)
        await self.wait_drained()
        limit = asyncio.Semaphore(32)

        async def one(job_id: str, arrived: float) -> Timing:
            async with limit:
                return await self.timing(job_id, arrived)

        return list(await asyncio.gather(*(one(*entry) for entry in submitted)))


def policy_for(name: str, targets: list[Target]) -> Policy:
    """The balancer called `name`."""
    policies: dict[str, Callable[[list[Target]], Policy]] = {
        "least-connections": LeastConnections,
        "round-robin": RoundRobin,
        "lowest-score": LowestScore,
    }
    return policies[name](targets)


async def background(
    targets: list[Target], rates: dict[str, float], stop: asyncio.Event, client: httpx.AsyncClient
) -> None:
    """Poisson traffic straight to each GPU at its rate until `stop`; waits for what it sent."""
    draw = random.Random(7)
    sent: list[asyncio.Task[bool]] = []

    async def feed(target: Target) -> None:
        while not stop.is_set():
            await asyncio.sleep(draw.expovariate(rates[target.name]))
            job = Job(-1, draw.randint(*TOKENS), 0)
            sent.append(asyncio.create_task(send(client, target, job)))

    await asyncio.gather(*(feed(target) for target in targets))
    await asyncio.gather(*sent)


Outcome = tuple[list[Timing], float] | BaseException


async def run_phase(
    names: list[str], run: FleetRun, jobs: list[Job], rates: dict[str, float]
) -> dict[str, Outcome]:
    """Schedulers at the same time, each on its own copy of the fleet; outcome by name."""
    outcomes = await asyncio.gather(
        *(run_scheduler(name, run, jobs, rates) for name in names), return_exceptions=True
    )
    return dict(zip(names, outcomes, strict=True))


async def run_scheduler(
    name: str, run: FleetRun, jobs: list[Job], rates: dict[str, float]
) -> tuple[list[Timing], float]:
    """One scheduler on one job set; the timings and the start time."""
    limits = httpx.Limits(
        max_connections=4000, max_keepalive_connections=200, keepalive_expiry=KEEPALIVE_EXPIRY_S
    )
    targets = run.targets(name.removesuffix(" alone"))
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        stop = asyncio.Event()
        direct = asyncio.create_task(background(targets, rates, stop, client)) if rates else None
        if direct:
            await asyncio.sleep(10 / run.speed)  # let direct traffic reach its steady state
        started = time.time()
        try:
            timings = await schedule(name, run, jobs, client)
        finally:
            stop.set()
            if direct:
                await direct
        await wait_idle(targets, client)
    return timings, started


async def schedule(
    name: str, run: FleetRun, jobs: list[Job], client: httpx.AsyncClient
) -> list[Timing]:
    """Run the jobs through smartqueue or through a client-side balancer."""
    if name == "smartqueue":
        return await SmartqueueClient(run.service_url, client).run(jobs)
    targets = run.targets(name.removesuffix(" alone"))
    policy = policy_for(name.removesuffix(" alone"), targets)
    poller = None
    if isinstance(policy, LowestScore):
        poller = asyncio.create_task(policy.poll(client, interval_s=max(0.05, 5 / run.speed)))
    try:
        return list(await drive(jobs, ClientQueue(targets, policy, client).run_job))
    finally:
        if poller:
            poller.cancel()


async def wait_idle(targets: list[Target], client: httpx.AsyncClient) -> None:
    """Until no sim has a request inside it."""
    while True:
        stats = [(await client.get(f"{t.sidecar_url}/sim/stats")).json() for t in targets]
        if not any(s["in_flight"] for s in stats):
            return
        await asyncio.sleep(0.05)


def background_rates(run: FleetRun, tokens: list[int]) -> dict[str, float]:
    """Direct jobs/s per GPU: BACKGROUND_SHARE of that GPU's own capacity for the mix."""
    return {m.name: BACKGROUND_SHARE * jobs_per_s([m], tokens, speed=run.speed) for m in run.models}


def record(
    section: Section, key: str, scheduler: str, timings: list[Timing], started: float, batch: bool
) -> None:
    """Add one run's figures: makespan for a batch, wait and end-to-end percentiles otherwise."""
    failures = sum(not t.ok for t in timings)
    section.add(f"{key} · {scheduler} · failed jobs", "jobs", failures)
    if batch:
        section.add(
            f"{key} · {scheduler} · makespan", "s", max(t.finished for t in timings) - started
        )
        first = min(t.dispatched for t in timings) - started  # smartqueue: after HTTP admission
        section.add(f"{key} · {scheduler} · first start", "s", first)
        return
    waits = [(t.dispatched - t.arrived) * 1000 for t in timings]
    ends = [(t.finished - t.arrived) * 1000 for t in timings]
    for q in (50, 99):
        section.add(f"{key} · {scheduler} · wait p{q}", "ms", percentile(waits, q))
        section.add(f"{key} · {scheduler} · e2e p{q}", "ms", percentile(ends, q))


def run_scenario(
    section: Section, run: FleetRun, scenario: Scenario, config: BenchConfig, round_index: int
) -> None:
    """The same jobs for every scheduler: smartqueue alone, the balancers together."""
    key = f"{run.spec.name} · {scenario.label}"
    tokens = mix_tokens()
    capacity = jobs_per_s(run.models, tokens, speed=run.speed)
    share = BACKGROUND_SHARE if scenario.background else 0.0
    rate = None if scenario.load is None else (scenario.load - share) * capacity
    count = config.batch_jobs
    if scenario.load is not None:
        count = config.poisson_jobs if held_by_a_bar(key) else config.other_poisson_jobs
    jobs = make_jobs(count, rate_per_s=rate, seed=1000 * round_index + 1)
    rates = background_rates(run, tokens) if scenario.background else {}
    if scenario.load is None:
        section.add(f"{key} · LP lower bound", "s", lp_bound(run, jobs, share))
    balancers = [
        name
        for name in BALANCERS
        if not (name == "round-robin" and rate and not round_robin_stable(run, rate, tokens, share))
    ]  # round-robin's queue on the slowest GPU would grow without end: nothing to measure
    phases = [["smartqueue"], balancers]
    if key == CONCURRENCY_CHECK:
        phases.append([ALONE])
    turn = round_index % len(phases)
    for phase in phases[turn:] + phases[:turn]:
        outcomes = asyncio.run(run_phase(phase, run, jobs, rates))
        for scheduler, outcome in outcomes.items():
            if isinstance(outcome, BaseException):  # one broken run must not lose the others
                section.notes.append(
                    f"{key} · {scheduler}, round {round_index + 1}: failed ({outcome!r})"
                )
                continue
            timings, started = outcome
            record(section, key, scheduler, timings, started, batch=scenario.load is None)


def round_robin_stable(run: FleetRun, rate_per_s: float, tokens: list[int], share: float) -> bool:
    """Whether each GPU's third of the arrivals, plus its direct traffic, is below its capacity."""
    per_gpu = rate_per_s / len(run.models)
    capacities = [jobs_per_s([m], tokens, speed=run.speed) for m in run.models]
    return all(per_gpu < (1 - share) * capacity for capacity in capacities)


def lp_bound(run: FleetRun, jobs: list[Job], share: float) -> float:
    """The LP bound on the capacity left after direct traffic (exact bound when share is 0)."""
    models = (
        [
            GpuModel(
                m.name, m.slots, m.ttft_s, m.tokens_per_s * (1 - share), m.slowdown_per_busy_slot
            )
            for m in run.models
        ]
        if share
        else run.models
    )
    if share:  # direct traffic takes a share of each slot's time: scale the whole work up
        models = [
            GpuModel(
                m.name, m.slots, m.ttft_s / (1 - share), m.tokens_per_s, m.slowdown_per_busy_slot
            )
            for m in models
        ]
    return makespan_lower_bound(models, [job.max_tokens for job in jobs], speed=run.speed)


def service_env(speed: float) -> dict[str, str]:
    """smartqueue's time knobs scaled like the sims' (probe every 5 s, poll every 0.5 s at 1x)."""
    return {
        **NO_BACKPRESSURE,
        "SMARTQUEUE_PROBE_INTERVAL_S": f"{5 / speed:g}",
        "SMARTQUEUE_IDLE_POLL_S": f"{0.5 / speed:g}",
    }


def run(config: BenchConfig) -> Section:
    """Each fleet in turn: start it, run every scenario for every round, then derive ratios."""
    section = Section("Scheduling on simulated fleets", show_figures=False)
    for fleet_name in config.scheduling_fleets:
        started = time.perf_counter()
        with Processes(config.workdir / f"scheduling-{fleet_name}") as procs:
            spec = FLEETS[fleet_name]()
            fleet_run = start(procs, spec, fleet_speed(config, spec))
            section.spend(f"{fleet_name} · start-up", time.perf_counter() - started)
            for round_index in range(config.scheduling_rounds):
                for scenario in scenarios(config, fleet_name):
                    if round_index >= rounds(config, f"{fleet_name} · {scenario.label}"):
                        continue
                    started = time.perf_counter()
                    run_scenario(section, fleet_run, scenario, config, round_index)
                    section.spend(f"{fleet_name} · {scenario.label}", time.perf_counter() - started)
        for scenario in scenarios(config, fleet_name):
            key = f"{fleet_name} · {scenario.label}"
            derive(section, key, batch=scenario.load is None)
            section.tables += table(section, key, batch=scenario.load is None)
    if SLOW_FLEET in config.scheduling_fleets:
        run_slow_fleet(section, config)
    section.bars += bars()
    section.notes += [*notes(config), speed_check(section, config), concurrency_check(section),
                      slow_fleet_check(section, config)]  # fmt: skip
    return section


def slow_key(config: BenchConfig) -> tuple[str, str]:
    """The slow fleet's key for its Poisson 90 % run, and the same run's key at full speed."""
    spec = FLEETS[SLOW_FLEET]()
    return f"{spec.name} sims {SLOW_DIVISOR}x slower · Poisson 90%", f"{spec.name} · Poisson 90%"


def run_slow_fleet(section: Section, config: BenchConfig) -> None:
    """The identical fleet's Poisson 90 % run again, on sims `SLOW_DIVISOR` times slower.

    On an identical fleet there is nothing to predict, so smartqueue's distance from
    least-connections there is its fixed cost per job (HTTP, Redis); that cost does not slow
    down with the sims, so it weighs `SLOW_DIVISOR` times less here.
    """
    started = time.perf_counter()
    spec = FLEETS[SLOW_FLEET]()
    slow = replace(spec, name=f"{spec.name} sims {SLOW_DIVISOR}x slower")
    with Processes(config.workdir / "scheduling-slow") as procs:
        fleet_run = start(procs, slow, fleet_speed(config, spec) / SLOW_DIVISOR)
        for round_index in range(config.other_scheduling_rounds):
            run_scenario(section, fleet_run, Scenario(0.9, False), config, round_index)
    key, _ = slow_key(config)
    section.spend(key, time.perf_counter() - started)
    derive(section, key, batch=False)
    section.tables += table(section, key, batch=False)


def slow_fleet_check(section: Section, config: BenchConfig) -> str:
    """How smartqueue's ratio to least-connections on the identical fleet moves with the speed."""
    slow, fast = slow_key(config)
    figures = []
    for key, divisor in ((fast, 1), (slow, SLOW_DIVISOR)):
        cells = [cell(section, f"{key} · smartqueue · {metric} / {BASELINE}")
                 for metric in ("e2e p50", "e2e p99")]  # fmt: skip
        speed = fleet_speed(config, FLEETS[SLOW_FLEET]()) / divisor
        figures.append(f"at --speed {speed:g}: p50 {cells[0]}, p99 {cells[1]}")
    return (
        f"Slow-fleet check ({SLOW_FLEET} fleet, Poisson 90%): smartqueue's e2e latency over "
        f"{BASELINE}'s {'; '.join(figures)}. The sims run {SLOW_DIVISOR} times slower in the "
        "second, smartqueue's fixed cost per job does not: what is left of the distance there "
        "is what that cost weighs at that speed."
    )


def held_by_a_bar(key: str) -> bool:
    """Whether a bar reads a figure of this fleet and scenario."""
    return key in {" · ".join(bar.figure.split(" · ")[:2]) for bar in bars()}


def rounds(config: BenchConfig, key: str) -> int:
    """All the rounds for a scenario a bar reads, fewer for the others."""
    return config.scheduling_rounds if held_by_a_bar(key) else config.other_scheduling_rounds


def start(procs: Processes, spec: FleetSpec, speed: float) -> FleetRun:
    """Redis, smartqueue and its sims on their cores, and a copy of the sims per balancer.

    The balancers' copies run on the service's core, which is idle while they run (smartqueue
    runs in its own phase), so the three balancers do not crowd the load core.
    """
    redis_url = procs.redis()
    cpus = {"smartqueue": LOAD_CPU, **dict.fromkeys(BALANCERS, SERVICE_CPU)}
    copies = start_copies(procs, spec, cpus, speed=speed)
    url = procs.service(
        "smartqueue",
        redis_url=redis_url,
        fleet_file=copies["smartqueue"][0],
        env=service_env(speed),
    )
    return FleetRun(spec, {name: sims for name, (_, sims) in copies.items()}, url, speed)


def derive(section: Section, key: str, *, batch: bool) -> None:
    """Per-round ratios against least-connections (and the LP bound for a batch)."""
    metrics = ("makespan",) if batch else ("e2e p50", "e2e p99")
    if not batch:  # what smartqueue's own per-job cost weighs at this speed (see speed_check)
        extra = f"{key} · smartqueue extra wait p50"
        section.difference(
            extra, f"{key} · smartqueue · wait p50", f"{key} · {BASELINE} · wait p50"
        )
        section.ratio(f"{extra} / e2e p50", extra, f"{key} · {BASELINE} · e2e p50")
    for scheduler in SCHEDULERS:
        for metric in metrics:
            section.ratio(
                f"{key} · {scheduler} · {metric} / {BASELINE}",
                f"{key} · {scheduler} · {metric}",
                f"{key} · {BASELINE} · {metric}",
            )
        if batch:
            section.ratio(
                f"{key} · {scheduler} · makespan / LP bound",
                f"{key} · {scheduler} · makespan",
                f"{key} · LP lower bound",
            )


def cell(section: Section, name: str) -> str:
    """`median (min-max)` of a figure, or n/a."""
    figure = section.figures.get(name)
    if figure is None or not figure.values:
        return "n/a"
    low, high = figure.spread
    return f"{number(figure.median)} ({number(low)}-{number(high)})"


def table(section: Section, key: str, *, batch: bool) -> list[str]:
    """A markdown table of one fleet and scenario: every scheduler, medians and spreads."""
    if batch:
        columns = ["makespan", "makespan / LP bound", f"makespan / {BASELINE}", "first start",
                   "failed jobs"]  # fmt: skip
        head = f"**{key}** (LP lower bound {cell(section, f'{key} · LP lower bound')} s)"
    else:
        columns = [
            "wait p50",
            "wait p99",
            "e2e p50",
            "e2e p99",
            f"e2e p50 / {BASELINE}",
            f"e2e p99 / {BASELINE}",
            "failed jobs",
        ]
        extra = f"{key} · smartqueue extra wait p50"
        head = (
            f"**{key}** (times in ms; smartqueue's wait p50 minus {BASELINE}'s: "
            f"{cell(section, extra)} ms, {cell(section, f'{extra} / e2e p50')} of its e2e p50)"
        )
    lines = [
        head,
        "",
        "| scheduler | " + " | ".join(columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for scheduler in SCHEDULERS:
        cells = [cell(section, f"{key} · {scheduler} · {column}") for column in columns]
        lines.append(f"| {scheduler} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def bars() -> list[Bar]:
    """The scheduling bars of SPEC §7."""
    het, idem = "heterogeneous", "identical"
    return [
        Bar(
            "batch makespan <= 1.05x LP bound (heterogeneous)",
            f"{het} · batch · smartqueue · makespan / LP bound",
            1.05,
        ),
        Bar(
            "Poisson 90%, heterogeneous: p99 e2e <= 0.7x least-connections",
            f"{het} · Poisson 90% · smartqueue · e2e p99 / {BASELINE}",
            0.7,
        ),
        Bar(
            "Poisson 90%, heterogeneous: p50 e2e within 15% of least-connections",
            f"{het} · Poisson 90% · smartqueue · e2e p50 / {BASELINE}",
            1.15,
        ),
        Bar(
            "same with direct traffic: p99 e2e <= 0.7x least-connections",
            f"{het} · Poisson 90% + direct 30% · smartqueue · e2e p99 / {BASELINE}",
            0.7,
        ),
        Bar(
            "same with direct traffic: p50 e2e within 15%",
            f"{het} · Poisson 90% + direct 30% · smartqueue · e2e p50 / {BASELINE}",
            1.15,
        ),
        Bar(
            "identical fleet, Poisson 90%: p99 e2e no worse than least-connections",
            f"{idem} · Poisson 90% · smartqueue · e2e p99 / {BASELINE}",
            1.0,
        ),
        Bar(
            "identical fleet, Poisson 90%: p50 e2e no worse than least-connections",
            f"{idem} · Poisson 90% · smartqueue · e2e p50 / {BASELINE}",
            1.0,
        ),
    ]


def speed_check(section: Section, config: BenchConfig) -> str:
    """Whether the speed factor left smartqueue's own per-job cost small beside the jobs."""
    key = "heterogeneous · Poisson 70% · smartqueue extra wait p50 / e2e p50"
    figure = section.figures.get(key)
    if figure is None or not figure.values:
        return "Speed check: not measured (heterogeneous, Poisson 70% did not run)."
    share = figure.median
    verdict = (
        "small enough" if share <= SPEED_CHECK_LIMIT else "TOO LARGE: re-run with BENCH_FULL=1"
    )
    return (
        f"Speed check (--speed {config.sim_speed:g} on the heterogeneous fleet): at 70 % load "
        f"smartqueue's wait p50 exceeds least-connections' by {share:.2%} of an end-to-end p50 "
        f"(limit {SPEED_CHECK_LIMIT:.0%}, a third of the 15 % p50 bar): {verdict}. That cost is "
        "fixed per job, so it shrinks by the speed factor on real GPUs."
    )


def concurrency_check(section: Section) -> str:
    """Whether running the balancers together slowed them (which would flatter smartqueue)."""
    ratios = []
    for metric in ("e2e p50", "e2e p99"):
        name = f"{CONCURRENCY_CHECK} · {BASELINE} together / alone · {metric}"
        together, alone = (f"{CONCURRENCY_CHECK} · {who} · {metric}" for who in (BASELINE, ALONE))
        section.ratio(name, together, alone)
        if name in section.figures:
            figure = section.figures[name]
            low, high = figure.spread
            ratios.append(f"{metric} {figure.median:.3f} ({low:.3f}-{high:.3f})")
    return (
        f"Concurrency check ({CONCURRENCY_CHECK}): {BASELINE} beside the other balancers vs "
        f"alone on the same jobs, in the same rounds: {', '.join(ratios) or 'not measured'} "
        "(1.0: running the balancers together does not slow them)."
    )


def speeds(config: BenchConfig) -> str:
    """`--speed` of each fleet, as the notes name them."""
    return ", ".join(
        f"{name} --speed {fleet_speed(config, FLEETS[name]()):g}"
        for name in config.scheduling_fleets
    )


def rank_from_top(count: int) -> str:
    """Which latency from the top a nearest-rank p99 of `count` values is."""
    rank = count - math.ceil(0.99 * count) + 1
    return {1: "largest", 2: "2nd-largest", 3: "3rd-largest"}.get(rank, f"{rank}th-largest")


def notes(config: BenchConfig) -> list[str]:
    """How the scheduling figures were made, for the reader of BENCHMARKS.md."""
    return [
        "Sims at a speed factor (every duration divided by it, arrival rates multiplied by it; "
        f"figures are wall-clock seconds at that speed): {speeds(config)}, so the average job "
        "lasts about as long on every fleet. Batch: "
        f"{config.batch_jobs} jobs at once; Poisson: {config.poisson_jobs} jobs where a bar reads "
        f"the run (its p99 is the {rank_from_top(config.poisson_jobs)} latency), "
        f"{config.other_poisson_jobs} elsewhere ({rank_from_top(config.other_poisson_jobs)}); "
        f"`max_tokens` uniform in {TOKENS[0]}..{TOKENS[1]}; the same jobs for every scheduler of a "
        f"round. {config.scheduling_rounds} rounds for the scenarios a bar reads, "
        f"{config.other_scheduling_rounds} for the others.",
        "First start (batch): seconds from the batch's first submission to its first job's "
        "start. smartqueue's jobs arrive through `POST /enqueue`, all at once on as many "
        "connections; the balancers hold theirs in-process. That HTTP burst is part of "
        "smartqueue's makespan and of none of the others' nor of the LP bound; at real GPU "
        "speeds it would weigh the speed factor less.",
        "Each fleet is started once, with a copy of its sims per scheduler. In each round "
        "smartqueue runs alone (its sims on the load core), and the three balancers run at the "
        "same time, each on its own copy (sims on the service core, idle then); the two phases "
        "take turns going first.",
        "Capacity (jobs/s) = sum over GPUs of slots/(1+s(slots-1)) divided by the mix's mean work "
        "on that GPU (ttft + (n-1)/tps): the fleet's rate with every slot busy. The LP bound is in "
        "`bench/fleet_model.py` (a dual of the fractional assignment LP, valid for any schedule).",
        "Direct 30%: Poisson requests straight to each sim at 30% of that GPU's capacity, started "
        "before the measured jobs; the queue's arrivals are then (load - 30%) of capacity so the "
        "total is the stated load. With direct traffic the LP bound is an approximation (each GPU "
        "at 70% of its capacity).",
        "smartqueue: `POST /enqueue` (route `default`, all GPUs); wait = started_at - arrival, "
        "e2e = completed_at - arrival from its job records. Its time knobs are scaled like the "
        "sims (SMARTQUEUE_PROBE_INTERVAL_S = 5 s / speed, SMARTQUEUE_IDLE_POLL_S = 0.5 s / "
        "speed); its fixed per-job cost (HTTP, Redis) is not, so it weighs speed-times more than "
        "on real GPUs.",
        "Balancers (bench/balancers.py) hold jobs on the client in FIFO order: least-connections "
        "and lowest-score count only their own in-flight jobs, capped at each GPU's slots; "
        "round-robin sends at once (the sim queues past its slots); lowest-score polls the "
        "sidecars every 5 s / speed (at least 0.05 s). Their wait = time held on the "
        "client. Round-robin is left out (n/a) of Poisson runs where a GPU's share of the "
        "arrivals exceeds what its capacity leaves (the heterogeneous and skewed fleets): its "
        "queue there grows without bound, so its percentiles would measure only the run's length.",
    ]
