"""The benchmarks' pure parts: LP bound, statistics, wrk and py-spy parsing, bodies, balancers."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bench.balancers import LeastConnections, RoundRobin, Target, draft_score
from bench.config import BenchConfig
from bench.fleet_model import GpuModel, jobs_per_s, makespan_lower_bound
from bench.fleets import FLEETS
from bench.httpload import chat_body, parse_wrk
from bench.profile import fold
from bench.scheduling import fleet_speed, rank_from_top
from bench.stats import Bar, Section, percentile

WRK_OUTPUT = """\
Running 4s test @ http://127.0.0.1:1/enqueue
  1 threads and 32 connections
  Latency Distribution
     50%    2.50ms
     75%    3.00ms
     90%    4.00ms
     99%   12.50ms
  5000 requests in 4.00s, 1.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec:   1250.00
"""


def gpu(name: str, *, slots: int = 1, tps: float = 10.0, slowdown: float = 0.0) -> GpuModel:
    return GpuModel(name, slots, ttft_s=0.0, tokens_per_s=tps, slowdown_per_busy_slot=slowdown)


def test_lp_bound_identical_gpus_equals_total_work_over_capacity() -> None:
    gpus = [gpu("a"), gpu("b")]
    bound = makespan_lower_bound(gpus, [11, 11, 11, 11], speed=1.0)
    assert bound == pytest.approx(2.0, rel=1e-3)  # 4 jobs x 1 s over 2 GPUs


def test_lp_bound_single_long_job_is_at_least_its_time_alone() -> None:
    bound = makespan_lower_bound([gpu("a"), gpu("b")], [101], speed=2.0)
    assert bound == pytest.approx(5.0)


def test_lp_bound_sends_work_to_the_faster_gpu() -> None:
    bound = makespan_lower_bound([gpu("fast", tps=30), gpu("slow", tps=10)], [31] * 4, speed=1)
    assert bound == pytest.approx(3.0, rel=0.01)  # 4 x 30 tokens at 40 tokens/s together


def test_capacity_counts_slots_and_slowdown() -> None:
    assert gpu("a", slots=3, slowdown=0.5).capacity == pytest.approx(1.5)
    assert jobs_per_s([gpu("a")], [11], speed=10) == pytest.approx(10.0)


@pytest.mark.parametrize(("q", "expected"), [(50, 50), (99, 99), (100, 100), (1, 1)])
def test_percentile_nearest_rank(q: float, expected: float) -> None:
    assert percentile([float(v) for v in range(1, 101)], q) == expected


def test_percentile_of_nothing_is_nan() -> None:
    assert math.isnan(percentile([], 50))


def test_section_ratio_and_difference_pair_rounds() -> None:
    section = Section("s")
    for a, b in ((4.0, 2.0), (9.0, 3.0)):
        section.add("a", "ms", a)
        section.add("b", "ms", b)
    section.ratio("a/b", "a", "b")
    section.difference("a-b", "a", "b")
    assert section.figures["a/b"].values == [2.0, 3.0]
    assert section.figures["a-b"].median == 4.0


def test_bar_direction_and_nan() -> None:
    assert Bar("x", "f", 0.8, higher_is_better=True).met(0.9)
    assert not Bar("x", "f", 10).met(11)
    assert not Bar("x", "f", 10).met(math.nan)


def test_parse_wrk_reads_rate_latency_and_errors() -> None:
    result = parse_wrk(WRK_OUTPUT)
    assert (result.requests_per_s, result.requests) == (1250.0, 5000)
    assert (result.non_2xx, result.errors) == (7, 3)
    assert (result.p50_ms, result.p99_ms) == (2.5, 12.5)


@pytest.mark.parametrize("size", [128, 1024])
def test_chat_body_has_the_exact_size(size: int) -> None:
    assert len(chat_body(size)) == size


def test_least_connections_respects_slots_and_order() -> None:
    targets = [Target("a", "", "", "m", 1), Target("b", "", "", "m", 2)]
    policy = LeastConnections(targets)
    assert policy.choose({"a": 0, "b": 0}) == "a"
    assert policy.choose({"a": 1, "b": 0}) == "b"
    assert policy.choose({"a": 1, "b": 2}) is None


def test_round_robin_ignores_load() -> None:
    policy = RoundRobin([Target("a", "", "", "m", 1), Target("b", "", "", "m", 1)])
    assert [policy.choose({"a": 9, "b": 9}) for _ in range(3)] == ["a", "b", "a"]


def test_draft_score_weights() -> None:
    health = {"gpu_util_pct": 100.0, "vram_used_mb": 50.0, "vram_total_mb": 100.0, "temp_c": 70.0}
    assert draft_score(health) == pytest.approx(60 + 15 + 1)


def test_section_ratio_of_an_unmeasured_figure_adds_nothing() -> None:
    section = Section("s")
    section.add("a", "ms", 1.0)
    section.ratio("a/b", "a", "b")
    assert "a/b" not in section.figures


ROOT = "<module> (smartqueue/__main__.py:3);run (asyncio/runners.py:118)"
FOLDED = f"""\
{ROOT};enqueue (smartqueue/api/routes/jobs.py:80) 6
{ROOT};enqueue (smartqueue/api/routes/jobs.py:82) 2
{ROOT} 2
"""


def test_fold_sums_self_and_inclusive_samples_without_line_numbers() -> None:
    total, own, inclusive = fold(FOLDED)
    assert total == 10
    assert own["enqueue (smartqueue/api/routes/jobs.py)"] == 8
    assert own["run (asyncio/runners.py)"] == 2
    assert inclusive["run (asyncio/runners.py)"] == 10


def test_section_spend_adds_up_per_step() -> None:
    section = Section("s")
    section.spend("fleet · batch", 1.5)
    section.spend("fleet · batch", 2.0)
    assert section.spent_s == {"fleet · batch": 3.5}


@pytest.mark.parametrize(("value", "full"), [("", False), ("0", False), ("1", True)])
def test_bench_full_env_picks_the_long_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str, full: bool
) -> None:
    monkeypatch.setenv("BENCH_FULL", value)
    config = BenchConfig.from_env(tmp_path)
    assert config.full is full
    assert (config.poisson_jobs > BenchConfig(workdir=tmp_path).poisson_jobs) is full


def test_fleet_speed_keeps_the_heterogeneous_speed_and_scales_slower_fleets(tmp_path: Path) -> None:
    config = BenchConfig(workdir=tmp_path, sim_speed=20)
    assert fleet_speed(config, FLEETS["heterogeneous"]()) == 20
    assert fleet_speed(config, FLEETS["identical"]()) > 20  # longer jobs: faster sims


@pytest.mark.parametrize(
    ("count", "rank"), [(90, "largest"), (100, "2nd-largest"), (200, "3rd-largest")]
)
def test_rank_from_top_names_the_nearest_rank_p99(count: int, rank: str) -> None:
    assert rank_from_top(count) == rank
