"""Pure Prometheus text for the engine metric endpoints, with the real engines' metric names."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from smartqueue_sim.state import LoadSnapshot


@dataclass(frozen=True, slots=True)
class Metric:
    """One metric family with a single sample."""

    family: str
    kind: Literal["gauge", "counter"]
    help: str
    value: float
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def sample_name(self) -> str:
        """Name of the sample line (counters end in `_total`)."""
        if self.kind == "counter" and not self.family.endswith("_total"):
            return f"{self.family}_total"
        return self.family


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_metrics(metrics: list[Metric]) -> str:
    """Prometheus text exposition format (version 0.0.4)."""
    lines: list[str] = []
    for metric in metrics:
        labels = ",".join(f'{key}="{_escape(val)}"' for key, val in metric.labels.items())
        lines.append(f"# HELP {metric.family} {metric.help}")
        lines.append(f"# TYPE {metric.family} {metric.kind}")
        lines.append(f"{metric.sample_name}{{{labels}}} {metric.value:g}".replace("{}", ""))
    return "\n".join(lines) + "\n"


def llamacpp_metrics(load: LoadSnapshot, *, tokens_per_s: float) -> list[Metric]:
    """llama.cpp `llama-server --metrics` families."""
    return [
        Metric(
            "llamacpp:prompt_tokens_total",
            "counter",
            "Number of prompt tokens processed.",
            load.prompt_tokens_total,
        ),
        Metric(
            "llamacpp:tokens_predicted_total",
            "counter",
            "Number of generation tokens processed.",
            load.tokens_predicted_total,
        ),
        Metric(
            "llamacpp:n_busy_slots_per_decode",
            "gauge",
            "Average number of busy slots per llama_decode() call",
            load.processing,
        ),
        Metric(
            "llamacpp:predicted_tokens_seconds",
            "gauge",
            "Average generation throughput in tokens/s.",
            tokens_per_s,
        ),
        Metric(
            "llamacpp:requests_processing",
            "gauge",
            "Number of requests processing.",
            load.processing,
        ),
        Metric(
            "llamacpp:requests_deferred", "gauge", "Number of requests deferred.", load.deferred
        ),
    ]


def kv_cache_usage(load: LoadSnapshot, *, context_tokens: int) -> float:
    """Share of the KV cache (all slots' contexts) held by active requests, 0..1."""
    capacity = load.slots * context_tokens
    return min(1.0, load.active_context_tokens / capacity) if capacity else 0.0


def vllm_metrics(load: LoadSnapshot, *, model: str, context_tokens: int) -> list[Metric]:
    """vLLM `/metrics` families (labelled with the served model, as vLLM does)."""
    labels = {"model_name": model}
    usage = kv_cache_usage(load, context_tokens=context_tokens)
    return [
        Metric(
            "vllm:num_requests_running",
            "gauge",
            "Number of requests in model execution batches.",
            load.processing,
            labels,
        ),
        Metric(
            "vllm:num_requests_waiting",
            "gauge",
            "Number of requests waiting to be processed.",
            load.deferred,
            labels,
        ),
        Metric(
            "vllm:kv_cache_usage_perc",
            "gauge",
            "KV-cache usage. 1 means 100 percent usage.",
            usage,
            labels,
        ),
        Metric(
            "vllm:prompt_tokens",
            "counter",
            "Number of prefill tokens processed.",
            load.prompt_tokens_total,
            labels,
        ),
        Metric(
            "vllm:generation_tokens",
            "counter",
            "Number of generation tokens processed.",
            load.tokens_predicted_total,
            labels,
        ),
        Metric(
            "vllm:request_success",
            "counter",
            "Count of successfully processed requests.",
            load.completed_total,
            labels,
        ),
    ]
