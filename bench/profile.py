"""Profiles of `smartqueue serve` under load: py-spy's folded stacks, top self-time functions.

    python -m bench.profile [--out docs/profiles] [--duration-s 8]

Starts on free loopback ports redis-server, one fast sim (8 slots, --speed 1000) and two services
on the service core: one without consumers for (a) wrk on `POST /enqueue`, one dispatching for
(b) 8 clients in a closed loop on `POST /v1/chat/completions` (wait mode). py-spy samples the
service (`record --format raw --nonblocking`, idle threads left out) while each load runs; the
folded stacks go to `<out>/<name>.folded` and the 15 functions with the most self time, and
smartqueue's own functions by inclusive time, to `<out>/<name>.txt`.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

import httpx

from bench.added_latency import HEADERS, complete
from bench.config import BenchConfig
from bench.httpload import KEEPALIVE_EXPIRY_S, chat_body, parse_wrk, write_wrk_script, wrk_args
from bench.procs import LOAD_CPU, NO_BACKPRESSURE, Processes, gpu_entry, pinned, write_fleet
from bench.stats import Section

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "docs" / "profiles"
TOP = 15
CLIENTS = 8
SAMPLES_PER_S = 200
LINE_NUMBER = re.compile(r":\d+\)$")
ENTRY_POINTS = ("smartqueue/__main__.py", "smartqueue/cli.py", "smartqueue/serve.py")


@dataclass(frozen=True)
class Profile:
    """Samples of one load: self and inclusive counts per frame (line numbers dropped)."""

    name: str
    load: str
    samples: int
    self_counts: Counter[str]
    inclusive_counts: Counter[str]


def fold(text: str) -> tuple[int, Counter[str], Counter[str]]:
    """Total samples, self counts (innermost frame) and inclusive counts of py-spy raw output."""
    total, own, inclusive = 0, Counter[str](), Counter[str]()
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [LINE_NUMBER.sub(")", frame) for frame in stack.split(";")]
        total += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            inclusive[frame] += int(count)
    return total, own, inclusive


def table(profile: Profile) -> list[str]:
    """The text report of one profile: top self time, then smartqueue's functions inclusive."""
    lines = [
        f"{profile.name}: {profile.load}",
        f"{profile.samples} samples at {SAMPLES_PER_S}/s (on-CPU stacks of every thread)",
        "",
        f"top {TOP} functions by self time",
        "  self%  function (file)",
    ]
    for frame, count in profile.self_counts.most_common(TOP):
        lines.append(f"{100 * count / max(1, profile.samples):6.1f}  {frame}")
    lines += ["", f"top {TOP} smartqueue functions by inclusive time", " total%  function (file)"]
    own = [
        (frame, count)
        for frame, count in profile.inclusive_counts.most_common()
        if "smartqueue/" in frame and not any(entry in frame for entry in ENTRY_POINTS)
    ]
    for frame, count in own[:TOP]:
        lines.append(f"{100 * count / max(1, profile.samples):6.1f}  {frame}")
    return lines


def record(pid: int, seconds: float, folded: Path) -> Profile:
    """py-spy on `pid` for `seconds` (pinned to the load core); the parsed samples."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    args = [py_spy, "record", "--pid", str(pid), "--duration", f"{seconds:.0f}", "--format"]
    args += ["raw", "--nonblocking", "--rate", str(SAMPLES_PER_S), "--output", str(folded)]
    subprocess.run(pinned(LOAD_CPU, args), check=True, capture_output=True, timeout=seconds + 60)
    total, own, inclusive = fold(folded.read_text(encoding="utf-8"))
    return Profile(folded.stem, "", total, own, inclusive)


def profile_enqueue(procs: Processes, url: str, seconds: float, out: Path) -> Profile:
    """(a) wrk on `POST /enqueue` (32 connections) while py-spy samples the service."""
    script = write_wrk_script(procs.workdir / "post.lua", chat_body(128))
    wrk = subprocess.Popen(
        wrk_args(f"{url}/enqueue", script, duration_s=seconds + 2, connections=32),
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(1)
    profile = record(procs.named["queue-only"].pid, seconds, out / "enqueue.folded")
    rate = parse_wrk(wrk.communicate()[0]).requests_per_s
    load = f"wrk -t1 -c32 on POST /enqueue, 128-byte body: {rate:,.0f} req/s while sampled"
    return replace(profile, load=load)


async def hold_load(url: str, seconds: float) -> int:
    """CLIENTS closed-loop clients on `/v1/chat/completions` for `seconds`; requests done."""
    deadline, done = time.monotonic() + seconds, [0]

    async def client_loop() -> None:
        limits = httpx.Limits(keepalive_expiry=KEEPALIVE_EXPIRY_S)
        async with httpx.AsyncClient(
            base_url=url, headers=HEADERS, timeout=30, limits=limits
        ) as client:
            while time.monotonic() < deadline:
                await complete(client)
                done[0] += 1

    async with asyncio.TaskGroup() as group:
        for _ in range(CLIENTS):
            group.create_task(client_loop())
    return done[0]


def profile_wait_mode(procs: Processes, url: str, seconds: float, out: Path) -> Profile:
    """(b) 8 clients in wait mode on `/v1/chat/completions` while py-spy samples the service."""

    async def sampled() -> tuple[Profile, int]:
        load = asyncio.create_task(hold_load(url, seconds + 2))
        await asyncio.sleep(1)
        pid = procs.named["dispatching"].pid
        profile = await asyncio.to_thread(record, pid, seconds, out / "v1-wait.folded")
        return profile, await load

    profile, done = asyncio.run(sampled())
    load = (
        f"{CLIENTS} clients in a closed loop on POST /v1/chat/completions (wait mode): "
        f"{done / (seconds + 2):,.0f} req/s"
    )
    return replace(profile, load=load)


def profile_service(workdir: Path, out: Path, seconds: float) -> list[Profile]:
    """Start the stack, profile both loads, write `<name>.txt` beside the folded stacks."""
    out.mkdir(parents=True, exist_ok=True)
    with Processes(workdir / "profile") as procs:
        redis_url = procs.redis()
        sim = procs.sim("gpu", slots=CLIENTS, speed=1000)
        fleet = write_fleet(
            procs.workdir / "fleet" / "fleet.yaml", [gpu_entry(sim, slots=CLIENTS)], profiles={}
        )
        queue_env = {**NO_BACKPRESSURE, "SMARTQUEUE_CONSUMERS": "0", "SMARTQUEUE_KEY_PREFIX": "pq"}
        queue = procs.service(
            "queue-only", redis_url=redis_url, fleet_file=fleet, env=queue_env, wait=False
        )
        held = procs.service("dispatching", redis_url=redis_url, fleet_file=fleet)
        procs.wait_healthy("queue-only", queue)
        profiles = [
            profile_enqueue(procs, queue, seconds, out),
            profile_wait_mode(procs, held, seconds, out),
        ]
    for profile in profiles:
        (out / f"{profile.name}.txt").write_text("\n".join(table(profile)) + "\n")
    return profiles


def run(config: BenchConfig) -> Section:
    """The profiles as a section of BENCHMARKS.md (and files under `config.profile_dir`)."""
    section = Section("Profiles of the service under load (py-spy)", show_figures=False)
    profiles = profile_service(config.workdir, config.profile_dir, config.profile_duration_s)
    for profile in profiles:
        section.add(f"{profile.name} samples", "samples", profile.samples)
        section.tables += ["```", *table(profile), "```", ""]
    section.notes.append(
        f"py-spy {config.profile_duration_s:g} s per load at {SAMPLES_PER_S} samples/s, "
        "`--nonblocking`, idle stacks left out; self% = share of samples whose innermost frame is "
        f"that function. Folded stacks and these tables: `{config.profile_dir}/` "
        "(`python -m bench.profile` or `make profile` alone)."
    )
    return section


def main() -> None:
    """Profile both loads and print the tables."""
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--duration-s", type=float, default=8.0)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sq-profile-") as workdir:
        profiles = profile_service(Path(workdir), options.out, options.duration_s)
    for profile in profiles:
        print("\n".join(table(profile)), end="\n\n")


if __name__ == "__main__":
    main()
