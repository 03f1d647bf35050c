"""`python -m bench`: run the benchmarks in priority order and write BENCHMARKS.md."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from bench import added_latency, enqueue, memory, profile, replicas, scheduling
from bench.config import BenchConfig
from bench.procs import LOAD_CPU
from bench.report import render
from bench.stats import Section

BENCHMARKS: dict[str, Callable[[BenchConfig], Section]] = {
    "enqueue": enqueue.run,
    "latency": added_latency.run,
    "scheduling": scheduling.run,
    "memory": memory.run,
    "replicas": replicas.run,
    "profile": profile.run,
}


def main() -> None:
    """Parse options, run, write the report and the raw values."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated subset")
    parser.add_argument("--out", type=Path, default=Path("BENCHMARKS.md"))
    options = parser.parse_args()
    names = [name.strip() for name in options.only.split(",") if name.strip()]
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)} (known: {', '.join(BENCHMARKS)})")
    if (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {int(LOAD_CPU)})  # drivers share the load core with wrk
    if os.environ.get("BENCH_QUICK"):
        print("[bench] BENCH_QUICK is gone: the default run is the short one (BENCH_FULL=1: long)")
    load_at_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="sq-bench-") as workdir:
        config = replace(
            BenchConfig.from_env(Path(workdir)),
            profile_dir=options.out.parent / "docs" / "profiles",
        )
        started = time.perf_counter()
        sections = [run_one(name, config) for name in names]
        elapsed_s = time.perf_counter() - started
    command = ("BENCH_FULL=1 " if config.full else "") + "make bench"
    if names != list(BENCHMARKS):
        command = f"python -m bench {shlex.join(sys.argv[1:])}"
    report = render(
        config, sections, command=command, elapsed_s=elapsed_s, load_at_start=load_at_start
    )
    options.out.write_text(report, encoding="utf-8")
    raw = {
        s.title: {f.name: {"unit": f.unit, "values": f.values} for f in s.figures.values()}
        for s in sections
    }
    options.out.with_name("bench-results.json").write_text(json.dumps(raw, indent=1) + "\n")
    print(f"wrote {options.out} in {elapsed_s / 60:.1f} min")
    failed = [section.title for section in sections if section.title.endswith(": FAILED")]
    if failed:
        sys.exit(f"benchmarks that failed (see {options.out}): {', '.join(failed)}")


def run_one(name: str, config: BenchConfig) -> Section:
    """One benchmark; a failure becomes a section saying what broke, the others still run."""
    print(f"[bench] {name} ...", flush=True)
    started = time.perf_counter()
    try:
        section = BENCHMARKS[name](config)
    except Exception as error:  # reported in the file; the run goes on
        traceback.print_exc()
        section = Section(f"{name}: FAILED", notes=[f"`{type(error).__name__}: {error}`"[:600]])
    section.elapsed_s = time.perf_counter() - started
    print(f"[bench] {name} done in {section.elapsed_s:.0f} s", flush=True)
    return section
