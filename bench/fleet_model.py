"""Pure arithmetic on a simulated fleet: job work, capacity and the LP lower bound on makespan.

A job j of n output tokens needs, on GPU g at speed 1 and alone, w(j,g) = ttft_base + (n-1)/tps
seconds (prompt cost left out: the prompts are a few tokens, and leaving it out keeps the bound a
bound). With k busy slots every step is 1 + s*(k-1) times slower, so g completes at most
cap(g) = slots / (1 + s*(slots-1)) units of such work per second, its rate with every slot busy
(k / (1 + s*(k-1)) grows with k while s < 1).

LP bound: let x(j,g) >= 0 with sum_g x(j,g) = 1 be the share of job j done on g. Any schedule
finishing by T satisfies sum_j x(j,g) w(j,g) <= T cap(g) for every g, so T is at least the value
of the LP  min T  s.t. those constraints. For any weights lam on the simplex,
sum_g lam_g * load_g / cap_g <= T, and the left side is at least sum_j min_g lam_g w(j,g)/cap_g:
every lam gives a lower bound (LP duality: the best lam gives the LP's value). We search lam on
a grid, refine around the best point, and also take max_j min_g w(j,g) (no job finishes faster
than alone on its fastest GPU). Divide by the sims' speed factor for wall-clock seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import product


@dataclass(frozen=True)
class GpuModel:
    """What the bound needs of one GPU's latency profile."""

    name: str
    slots: int
    ttft_s: float
    tokens_per_s: float
    slowdown_per_busy_slot: float

    def work_s(self, tokens: int) -> float:
        """Seconds a job of `tokens` output tokens takes alone, speed 1, no prompt cost."""
        return self.ttft_s + max(0, tokens - 1) / self.tokens_per_s

    @property
    def capacity(self) -> float:
        """Work-seconds per second with every slot busy."""
        return self.slots / (1 + self.slowdown_per_busy_slot * (self.slots - 1))


def jobs_per_s(gpus: Sequence[GpuModel], tokens: Sequence[int], *, speed: float) -> float:
    """Fleet throughput for this job mix when each GPU is full and gets the mix's average job."""
    return sum(g.capacity / (sum(g.work_s(n) for n in tokens) / len(tokens)) for g in gpus) * speed


def _dual_value(weights: Sequence[float], costs: list[list[float]]) -> float:
    return sum(min(w * c for w, c in zip(weights, row, strict=True)) for row in costs)


def _simplex_grid(dimensions: int, steps: int) -> list[tuple[float, ...]]:
    points = []
    for head in product(range(steps + 1), repeat=dimensions - 1):
        if sum(head) <= steps:
            points.append((*(h / steps for h in head), (steps - sum(head)) / steps))
    return points


def _refine(best: tuple[float, ...], costs: list[list[float]], step: float) -> tuple[float, ...]:
    for _ in range(40):
        moved = False
        for i, j in product(range(len(best)), repeat=2):
            if i == j or best[j] < step:
                continue
            trial = list(best)
            trial[i] += step
            trial[j] -= step
            if _dual_value(trial, costs) > _dual_value(best, costs):
                best, moved = tuple(trial), True
        if not moved:
            step /= 2
    return best


def makespan_lower_bound(gpus: Sequence[GpuModel], tokens: Sequence[int], *, speed: float) -> float:
    """Seconds no schedule of these jobs (all available at 0) can beat on this fleet."""
    costs = [[g.work_s(n) / g.capacity for g in gpus] for n in tokens]
    grid = _simplex_grid(len(gpus), 30 if len(gpus) <= 3 else 8)
    best = max(grid, key=lambda weights: _dual_value(weights, costs))
    best = _refine(best, costs, 1 / 60)
    longest_alone = max(min(g.work_s(n) for g in gpus) for n in tokens)
    return max(_dual_value(best, costs), longest_alone) / speed
