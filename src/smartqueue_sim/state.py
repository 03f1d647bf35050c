"""Pure counters of a simulated GPU: requests per job, concurrency high-water marks, tokens."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict


class SimStats(BaseModel):
    """`GET /sim/stats`: enough to prove "no duplicate calls" and "never over slots"."""

    model_config = ConfigDict(frozen=True)

    requests_total: int
    requests_by_job: dict[str, int]
    requests_without_job: int
    in_flight: int
    processing: int
    deferred: int
    max_in_flight: int
    max_processing: int
    completed_total: int
    cancelled_total: int
    faults_injected_total: int
    prompt_tokens_total: int
    tokens_predicted_total: int


@dataclass(frozen=True, slots=True)
class LoadSnapshot:
    """Current load, as the engine metric endpoints and the sidecar report it."""

    slots: int
    processing: int
    deferred: int
    active_context_tokens: int
    prompt_tokens_total: int
    tokens_predicted_total: int
    completed_total: int


@dataclass
class SimCounters:
    """Mutable counters; every change is one small method so the rules live in one place."""

    requests_by_job: Counter[str] = field(default_factory=Counter)
    requests_total: int = 0
    requests_without_job: int = 0
    in_flight: int = 0
    processing: int = 0
    max_in_flight: int = 0
    max_processing: int = 0
    completed_total: int = 0
    cancelled_total: int = 0
    faults_injected_total: int = 0
    prompt_tokens_total: int = 0
    tokens_predicted_total: int = 0
    active_context_tokens: int = 0

    def record_arrival(self, job_id: str | None) -> None:
        """Count one inference request, under its job id when it has one."""
        self.requests_total += 1
        if job_id:
            self.requests_by_job[job_id] += 1
        else:
            self.requests_without_job += 1

    def record_fault(self) -> None:
        """Count one request answered by an injected fault."""
        self.faults_injected_total += 1

    def enter(self) -> None:
        """A request starts waiting for a slot."""
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def start_generation(self, prompt_tokens: int) -> None:
        """A request got a slot and starts processing its prompt."""
        self.processing += 1
        self.max_processing = max(self.max_processing, self.processing)
        self.active_context_tokens += prompt_tokens

    def prompt_done(self, prompt_tokens: int) -> None:
        """The prompt of a request has been processed."""
        self.prompt_tokens_total += prompt_tokens

    def token_generated(self) -> None:
        """One output token was generated."""
        self.tokens_predicted_total += 1
        self.active_context_tokens += 1

    def end_generation(self, context_tokens: int) -> None:
        """A request leaves its slot, freeing the context it held."""
        self.processing -= 1
        self.active_context_tokens -= context_tokens

    def leave(self, *, completed: bool) -> None:
        """A request leaves the server, finished or cancelled."""
        self.in_flight -= 1
        if completed:
            self.completed_total += 1
        else:
            self.cancelled_total += 1

    def reset(self) -> None:
        """Forget totals and high-water marks; requests still running stay counted as current."""
        fresh = SimCounters(in_flight=self.in_flight, processing=self.processing)
        fresh.max_in_flight, fresh.max_processing = self.in_flight, self.processing
        fresh.active_context_tokens = self.active_context_tokens
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(fresh, name))

    def stats(self) -> SimStats:
        """A copy for the control API."""
        return SimStats(
            requests_total=self.requests_total,
            requests_by_job=dict(self.requests_by_job),
            requests_without_job=self.requests_without_job,
            in_flight=self.in_flight,
            processing=self.processing,
            deferred=self.in_flight - self.processing,
            max_in_flight=self.max_in_flight,
            max_processing=self.max_processing,
            completed_total=self.completed_total,
            cancelled_total=self.cancelled_total,
            faults_injected_total=self.faults_injected_total,
            prompt_tokens_total=self.prompt_tokens_total,
            tokens_predicted_total=self.tokens_predicted_total,
        )

    def snapshot(self, slots: int) -> LoadSnapshot:
        """Current load for the metric endpoints."""
        return LoadSnapshot(
            slots=slots,
            processing=self.processing,
            deferred=self.in_flight - self.processing,
            active_context_tokens=self.active_context_tokens,
            prompt_tokens_total=self.prompt_tokens_total,
            tokens_predicted_total=self.tokens_predicted_total,
            completed_total=self.completed_total,
        )
