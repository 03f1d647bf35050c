"""Placeholder."""

from bench.config import BenchConfig
from bench.stats import Section


def run(config: BenchConfig) -> Section:
    """Not written yet."""
    raise NotImplementedError("added_latency")
