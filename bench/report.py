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

CAVEATS = """\
## Reading these figures

- Ratios of figures taken in the same round (A B A B ...) are what the bars use; absolute figures
  move with the machine's load, so compare them only within one file.
- Scheduling runs the sims at a speed factor: the GPUs' durations shrink by it, the service's
  fixed per-job cost (HTTP, Redis, polling) does not, so that cost weighs more than on real GPUs.
- smartqueue's scheduling times come from its job records (`created_at`, `started_at`,
  `completed_at`); a held `/v1` client would see its answer slightly later.
- A full `make bench` runs about 45 minutes on 2 cores, most of it in scheduling (3 fleets,
  batch and Poisson, with and without direct traffic, 3 rounds); `BENCH_QUICK=1` about 20.
"""

RERUN = """\
## How to re-run

```sh
make bench                  # full run: writes BENCHMARKS.md and bench-results.json
BENCH_QUICK=1 make bench    # quick check: 2 rounds, shorter runs, smaller batches
.venv/bin/python -m bench --only enqueue,latency   # some benchmarks; --out FILE elsewhere
```

`make bench` creates `.venv`, installs `redis-server` and `wrk` through apt-get when missing, and
starts everything itself on free loopback ports (redis-server in a temp dir, `smartqueue sim` /
`sim-fleet`, `smartqueue serve` with `SMARTQUEUE_*` env vars, the bare app
`python -m bench.bare_app`), then stops it. Services run on core 0, wrk, Redis, the sims and the
drivers on core 1 (`taskset`). Rounds are interleaved (A B A B ...); each figure is the median
over rounds with the lowest and highest round. The raw values are in `bench-results.json`.
"""


def machine() -> list[str]:
    """Cores, CPU model, OS, Python and redis-server version, as table rows."""
    cpu = _cpu_model()
    redis = _command(["redis-server", "--version"]).split(" v=")[-1].split()[0]
    wrk = _command(["wrk", "--version"]).split("[")[0].strip()
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return [
        f"| cores | {os.cpu_count()} |",
        f"| CPU | {cpu} |",
        f"| OS | {platform.platform()} |",
        f"| Python | {platform.python_version()} |",
        f"| redis-server | {redis} |",
        f"| wrk | {wrk} |",
        f"| load average at the end | {load} |",
    ]


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
    return [*lines, ""]


def render(config: BenchConfig, sections: list[Section], *, command: str, elapsed_s: float) -> str:
    """The whole BENCHMARKS.md."""
    mode = (
        "QUICK MODE on a busy shared machine (other jobs were running): indicative only"
        if config.quick
        else "full run"
    )
    lines = [
        "# smartqueue benchmarks",
        "",
        f"Written by `{command}` on {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} "
        f"in {elapsed_s / 60:.1f} min - **{mode}**, {config.rounds} interleaved rounds.",
        "",
        "## Machine",
        "",
        "| | |",
        "|---|---|",
        *machine(),
        "",
        *bar_lines(sections),
    ]
    for section in sections:
        lines += section_lines(section)
    lines += [CAVEATS, RERUN]
    return "\n".join(lines)
