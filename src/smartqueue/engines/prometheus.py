"""Prometheus text, as llama.cpp and vLLM expose it, down to sample values by name."""

from __future__ import annotations

import math
from collections.abc import Iterable

from prometheus_client.parser import text_string_to_metric_families

SampleValues = dict[str, list[float]]


def sample_values(text: str) -> SampleValues:
    """Every sample's value by sample name; ValueError when the text or a value is unusable.

    Matching is on `sample.name`: the parser strips `_total` from counter family names only.
    """
    values: SampleValues = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            value = float(sample.value)
            if not math.isfinite(value):
                raise ValueError(f"{sample.name} is {value}")
            values.setdefault(sample.name, []).append(value)
    return values


def first_present(values: SampleValues, names: Iterable[str]) -> list[float] | None:
    """The samples of the first name in `names` that the text has."""
    return next((values[name] for name in names if name in values), None)


def summed_count(values: SampleValues, *names: str) -> int | None:
    """A count summed over its samples (one per engine or label set), under the first name found."""
    samples = first_present(values, names)
    return max(0, round(sum(samples))) if samples is not None else None


def highest_ratio(values: SampleValues, *names: str) -> float | None:
    """The highest of a 0..1 gauge's samples, clamped to 0..1, under the first name found."""
    samples = first_present(values, names)
    return min(1.0, max(0.0, max(samples))) if samples else None
