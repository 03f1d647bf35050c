"""BENCHMARKS.md: how to re-run, the machine, each figure's median and spread, each bar."""

from __future__ import annotations

import math
import os
import platform
import subprocess
import time
from pathlib import Path

from bench.config import BenchConfig
from bench.stats import Figure, Section

PROFILES = "Profiles of the service under load"

CAVEATS = """\
## Reading these figures

- Ratios of figures taken in the same round (A B A B ...) are what the bars use; absolute figures
  move with the machine's load (see the load averages above), so compare them only within one
  file.
- Scheduling runs the sims at a speed factor: the GPUs' durations shrink by it, the service's
  fixed per-job cost (HTTP, Redis, polling) does not, so that cost weighs more than on real GPUs;
  the speed check under the scheduling section says how much it weighed in this run.
- smartqueue's scheduling times come from its job records (`created_at`, `started_at`,
  `completed_at`); a held `/v1` client would see its answer slightly later.
"""

RERUN = """\
## How to re-run

```sh
make bench                  # about 10 minutes on 2 cores -> BENCHMARKS.md, bench-results.json
BENCH_FULL=1 make bench     # the long run: about an hour (5 rounds, sims at 10x, 18 scenarios)
make profile                # py-spy profiles of the service under load only -> docs/profiles/
.venv/bin/python -m bench --only enqueue,latency   # some benchmarks; --out FILE elsewhere
```

The default run: 3 interleaved rounds of 3 s (wrk, open loop) for enqueue, latency, memory and
replicas; scheduling with the sims at --speed 20 on the heterogeneous fleet (28 and 29 on the
skewed and identical ones, whose jobs are longer), 120-job batches, 200-job Poisson runs where a
bar reads the figure and 120 elsewhere, 3 rounds where a bar reads and 2 elsewhere, every
scenario on the heterogeneous fleet and batch, 90 % and 90 % + direct on the other two; 8 s
profiles; then `python -m bench.batch_interference --seconds 10`. `BENCH_FULL=1`: 5 rounds of
10 s, sims at --speed 10 (14, 15), 300-job batches, 300- and 200-job Poisson runs in 5 or 3
rounds, all six scenarios on every fleet, 15 s profiles, `--seconds 20`.

`make bench` creates `.venv`, installs `redis-server` and `wrk` through apt-get when missing, and
starts everything itself on free loopback ports (redis-server in a temp dir, `smartqueue sim` /
`sim-fleet`, `smartqueue serve` with `SMARTQUEUE_*` env vars, the bare app
`python -m bench.bare_app`), then stops it. Services run on core 0, wrk, Redis, the sims and the
drivers on core 1 (`taskset`). Rounds are interleaved (A B A B ...); each figure is the median
over rounds with the lowest and highest round. The raw values are in `bench-results.json`. It
fails (non-zero exit) when a benchmark fails; the section then says what broke.
"""


def machine(load_at_start: tuple[float, float, float]) -> list[str]:
    """Cores, CPU model, OS, Python and redis-server version, load averages, as table rows."""
    cpu = _cpu_model()
    redis = _command(["redis-server", "--version"]).split(" v=")[-1].split()[0]
    wrk = _command(["wrk", "--version"]).split("[")[0].strip()
    return [
        f"| cores | {os.cpu_count()} |",
        f"| CPU | {cpu} |",
        f"| OS | {platform.platform()} |",
        f"| Python | {platform.python_version()} |",
        f"| redis-server | {redis} |",
        f"| wrk | {wrk} |",
        f"| load average (1, 5, 15 min) at the start | {_loads(load_at_start)} |",
        f"| load average (1, 5, 15 min) at the end | {_loads(os.getloadavg())} |",
    ]


def _loads(values: tuple[float, float, float]) -> str:
    return ", ".join(f"{value:.2f}" for value in values)


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _command(args: list[str]) -> str:
    try:
        return subprocess.run(args, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "missing"


def number(value: float) -> str:
    """A figure rounded for reading: 3 significant digits, thousands without decimals."""
    if math.isnan(value):
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def figure_row(figure: Figure) -> str:
    """`| name | median unit | min-max | rounds |`."""
    low, high = figure.spread
    return (
        f"| {figure.name} | {number(figure.median)} {figure.unit} | "
        f"{number(low)}-{number(high)} | {len(figure.values)} |"
    )


def section_lines(section: Section) -> list[str]:
    """A section's figure table and notes."""
    lines = [f"## {section.title}", ""]
    if section.show_figures:
        lines += ["| Figure | Median | Min-max | Rounds |", "|---|---|---|---|"]
        lines += [figure_row(figure) for figure in section.figures.values()]
        lines.append("")
    lines += section.tables
    lines += [*(f"- {note}" for note in section.notes), ""]
    return lines


def bar_lines(sections: list[Section]) -> list[str]:
    """Every bar with its figure and met/missed."""
    lines = [
        "## Bars (SPEC §7)",
        "",
        "| Bar | Figure (median, min-max) | Result |",
        "|---|---|---|",
    ]
    for section in sections:
        for bar in section.bars:
            figure = section.figures.get(bar.figure)
            if figure is None:
                lines.append(f"| {bar.name} | not measured | missed (not measured) |")
                continue
            low, high = figure.spread
            verdict = "**met**" if bar.met(figure.median) else "**missed**"
            lines.append(
                f"| {bar.name} | {number(figure.median)} {figure.unit} "
                f"({number(low)}-{number(high)}) | {verdict} |"
            )
    if any("missed" in line for line in lines) and any(
        s.title.startswith(PROFILES) for s in sections
    ):
        lines += [
            "",
            "For each missed bar, docs/performance.md gives where the time goes, what was "
            "changed and what stands between the figure and the bar on this stack; "
            f'"{PROFILES}" below shows where the service spends its CPU under wrk on '
            "`POST /enqueue` and under 8 wait-mode `/v1` clients.",
        ]
    return [*lines, ""]


def time_lines(sections: list[Section], elapsed_s: float) -> list[str]:
    """Where the run's time went: each benchmark, and its steps where it reports them."""
    lines = ["## Where the time went", "", "| Step | Seconds |", "|---|---|"]
    for section in sections:
        lines.append(f"| {section.title} | {section.elapsed_s:.0f} |")
        lines += [f"| &nbsp;&nbsp;{step} | {s:.0f} |" for step, s in section.spent_s.items()]
    return [*lines, f"| whole run | {elapsed_s:.0f} |", ""]


def render(
    config: BenchConfig,
    sections: list[Section],
    *,
    command: str,
    elapsed_s: float,
    load_at_start: tuple[float, float, float],
) -> str:
    """The whole BENCHMARKS.md."""
    lines = [
        "# smartqueue benchmarks",
        "",
        f"Written by `{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} "
        f"in {elapsed_s / 60:.1f} min - settings **{config.mode}**: {config.rounds} interleaved "
        f"rounds ({config.scheduling_rounds} for scheduling).",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *machine(load_at_start),
        "",
        *bar_lines(sections),
    ]
    for section in sections:
        lines += section_lines(section)
    lines += [*time_lines(sections, elapsed_s), CAVEATS, RERUN]
    return "\n".join(lines)
