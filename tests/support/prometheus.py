"""Reading a Prometheus exposition in tests: samples by name and labels, promtool's verdict."""

from __future__ import annotations

import subprocess

from prometheus_client.parser import text_string_to_metric_families

from tests.support.binaries import require_binary

SampleKey = tuple[str, tuple[tuple[str, str], ...]]


def samples(exposition: str) -> dict[SampleKey, float]:
    """Every sample: (name, sorted label pairs) -> value (names keep `_total`, `_bucket`...)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


def sample_names(exposition: str) -> set[str]:
    """The name of every sample in an exposition."""
    return {name for name, _ in samples(exposition)}


def promtool_check_metrics(exposition: str) -> str:
    """What `promtool check metrics` complains about ("" when it passes)."""
    result = subprocess.run([require_binary("promtool"), "check", "metrics"], input=exposition,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    return "" if result.returncode == 0 else result.stdout + result.stderr
