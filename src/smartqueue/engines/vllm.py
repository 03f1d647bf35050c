"""vLLM `/metrics`: running, waiting and KV-cache use, per engine (`engine` label) and model.

The KV gauge is `vllm:kv_cache_usage_perc` today and `vllm:gpu_cache_usage_perc` in older
releases (both a 0..1 fraction despite the name); both are read, the current one first.
"""

from __future__ import annotations

from smartqueue.engines.prometheus import highest_ratio, sample_values, summed_count
from smartqueue.engines.view import Bodies, EngineAdapter, EngineView

HEALTH_PATH = "/health"
METRICS_PATH = "/metrics"
KV_CACHE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")


def read_metrics(text: str, *, observed_at: float) -> EngineView:
    """Queue numbers summed over engines, the fullest engine's KV use; ValueError if unparsable."""
    values = sample_values(text)
    return EngineView(
        observed_at,
        running=summed_count(values, "vllm:num_requests_running"),
        waiting=summed_count(values, "vllm:num_requests_waiting"),
        kv_pressure=highest_ratio(values, *KV_CACHE),
    )


def read(bodies: Bodies, model: str, observed_at: float) -> EngineView:
    """The view from `/metrics`, or an empty one when it is missing or unparsable."""
    if METRICS_PATH not in bodies:
        return EngineView(observed_at)
    try:
        return read_metrics(bodies[METRICS_PATH], observed_at=observed_at)
    except ValueError:
        return EngineView(observed_at)


ADAPTER = EngineAdapter(HEALTH_PATH, (METRICS_PATH,), read)
