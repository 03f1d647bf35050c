"""Figures measured over interleaved rounds, and the bars they are held against."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Figure:
    """One measured quantity: its value in each round."""

    name: str
    unit: str
    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        """Median over the rounds (NaN when nothing was measured)."""
        return statistics.median(self.values) if self.values else math.nan

    @property
    def spread(self) -> tuple[float, float]:
        """Lowest and highest round."""
        return (min(self.values), max(self.values)) if self.values else (math.nan, math.nan)


@dataclass(frozen=True)
class Bar:
    """A bar of SPEC §7: a figure's median held against a limit."""

    name: str
    figure: str
    limit: float
    higher_is_better: bool = False

    def met(self, value: float) -> bool:
        """Whether `value` passes the bar (NaN never does)."""
        if math.isnan(value):
            return False
        return value >= self.limit if self.higher_is_better else value <= self.limit


@dataclass
class Section:
    """What one benchmark reports: figures, bars, notes and the settings it ran with."""

    title: str
    figures: dict[str, Figure] = field(default_factory=dict)
    bars: list[Bar] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)
    show_figures: bool = True
    elapsed_s: float = 0.0
    spent_s: dict[str, float] = field(default_factory=dict)

    def spend(self, step: str, seconds: float) -> None:
        """Add wall-clock seconds to one step of the benchmark (where the run's time went)."""
        self.spent_s[step] = self.spent_s.get(step, 0.0) + seconds

    @contextmanager
    def timed(self, step: str) -> Iterator[None]:
        """Count the block's wall-clock time to `step`."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.spend(step, time.perf_counter() - started)

    def add(self, name: str, unit: str, value: float) -> None:
        """Record one round's value of a figure (created on first use, kept in order)."""
        self.figures.setdefault(name, Figure(name, unit)).values.append(value)

    def ratio(self, name: str, numerator: str, denominator: str) -> None:
        """Add per-round ratios of two figures measured in the same rounds (if both were)."""
        if numerator not in self.figures or denominator not in self.figures:
            return
        top, bottom = self.figures[numerator].values, self.figures[denominator].values
        for a, b in zip(top, bottom, strict=False):
            self.add(name, "x", a / b if b else math.nan)

    def difference(self, name: str, minuend: str, subtrahend: str) -> None:
        """Add per-round differences of two figures measured in the same rounds (if both were)."""
        if minuend not in self.figures or subtrahend not in self.figures:
            return
        top, bottom = self.figures[minuend], self.figures[subtrahend]
        for a, b in zip(top.values, bottom.values, strict=False):
            self.add(name, top.unit, a - b)
