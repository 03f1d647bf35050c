"""llama.cpp `llama-server`: `/metrics` (with `--metrics`) and `/slots` (on by default).

`/metrics`: `llamacpp:requests_processing` (busy), `llamacpp:requests_deferred` (waiting inside
the server), and in older builds `llamacpp:kv_cache_usage_ratio`. `/slots`: one entry per slot
(`--parallel N`) with `is_processing`; their count is the capacity.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

from smartqueue.engines.prometheus import highest_ratio, sample_values, summed_count
from smartqueue.engines.view import Bodies, EngineAdapter, EngineView

HEALTH_PATH = "/health"
METRICS_PATH = "/metrics"
SLOTS_PATH = "/slots"


def read_metrics(text: str, *, observed_at: float) -> EngineView:
    """Busy, deferred and (older builds) KV use from `/metrics`; ValueError if unparsable."""
    values = sample_values(text)
    return EngineView(
        observed_at,
        running=summed_count(values, "llamacpp:requests_processing"),
        waiting=summed_count(values, "llamacpp:requests_deferred"),
        kv_pressure=highest_ratio(values, "llamacpp:kv_cache_usage_ratio"),
    )


def read_slots(document: Any, *, observed_at: float) -> EngineView:
    """Busy slots and capacity from `/slots`; ValueError unless it is a list of slot objects."""
    if not isinstance(document, list) or not all(isinstance(slot, dict) for slot in document):
        raise ValueError("/slots is not a list of slots")
    busy = sum(1 for slot in document if slot.get("is_processing") is True)
    return EngineView(observed_at, running=busy, capacity=len(document))


def read(bodies: Bodies, model: str, observed_at: float) -> EngineView:
    """Both endpoints merged; one that is missing or unparsable leaves its signals unknown."""
    metrics = slots = EngineView(observed_at)
    if METRICS_PATH in bodies:
        with contextlib.suppress(ValueError):
            metrics = read_metrics(bodies[METRICS_PATH], observed_at=observed_at)
    if SLOTS_PATH in bodies:
        with contextlib.suppress(ValueError):
            slots = read_slots(json.loads(bodies[SLOTS_PATH]), observed_at=observed_at)
    return EngineView(
        observed_at,
        running=_larger(metrics.running, slots.running),
        waiting=metrics.waiting,
        capacity=slots.capacity,
        kv_pressure=metrics.kv_pressure,
    )


def _larger(first: int | None, second: int | None) -> int | None:
    known = [value for value in (first, second) if value is not None]
    return max(known) if known else None


ADAPTER = EngineAdapter(HEALTH_PATH, (METRICS_PATH, SLOTS_PATH), read)
