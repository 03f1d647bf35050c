"""One simulated GPU: settings, slots, counters, faults and the timed token generation."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from smartqueue.config import Engine
from smartqueue_sim.completions import CompletionKind, CompletionRequest, generate_tokens
from smartqueue_sim.faults import FaultMode, FaultSettings, fault_for_request
from smartqueue_sim.latency import (
    BUILTIN_PROFILES,
    DEFAULT_PROFILE,
    FinishReason,
    LatencyProfile,
    output_length,
    time_to_first_token_s,
    token_interval_s,
)
from smartqueue_sim.slots import SlotPool
from smartqueue_sim.state import LoadSnapshot, SimCounters
from smartqueue_sim.telemetry import (
    IDLE_TEMP_C,
    THERMAL_TIME_CONSTANT_S,
    GpuReading,
    ThermalState,
    advance_temperature,
    gpu_util_pct,
    vram_used_mb,
)

# Sleeping shorter than this costs more than it simulates; the deadline keeps the total right.
MIN_SLEEP_S = 0.001


class SimSettings(BaseModel):
    """Everything that defines one simulated GPU."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = "sim"
    engine: Engine = Engine.LLAMACPP
    model: str = Field(default="sim-model", min_length=1)
    slots: int = Field(default=2, ge=1, le=1024)
    speed: float = Field(default=1.0, gt=0, description="Every duration is divided by this")
    seed: int = 0
    profile_name: str = DEFAULT_PROFILE
    profile: LatencyProfile = BUILTIN_PROFILES[DEFAULT_PROFILE]
    vram_total_mb: int = Field(default=24576, gt=0)
    loading_delay_s: float = Field(default=0.0, ge=0, description="/health answers 503 so long")
    faults: FaultSettings = FaultSettings()
    api_key: SecretStr | None = Field(
        default=None, min_length=1, description="Bearer key the engine port wants (sidecar: none)"
    )


class ListenerSwitch(Protocol):
    """The main port's listening sockets, which the `refuse` fault closes and reopens."""

    async def set_accepting(self, accepting: bool) -> None:
        """Listen on the port (True) or refuse connections (False)."""


@dataclass(frozen=True, slots=True)
class GenerationPlan:
    """The output decided for one request before any time passes."""

    request: CompletionRequest
    tokens: list[str]
    finish: FinishReason


class SimGpu:
    """State and behaviour of one simulated GPU, shared by its main app and its sidecar."""

    def __init__(self, settings: SimSettings, *, clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.counters = SimCounters()
        self.pool = SlotPool(settings.slots)
        self._clock = clock
        self._started_at = clock()
        self._faults = settings.faults
        self._fault_rng = random.Random(settings.seed)
        self._thermal = ThermalState(temp_c=IDLE_TEMP_C, at_s=self._started_at)
        self._listener: ListenerSwitch | None = None
        self._ids = itertools.count(1)

    @property
    def faults(self) -> FaultSettings:
        """The active fault settings."""
        return self._faults

    def switch_faults(self, faults: FaultSettings) -> None:
        """Switch faults at once, for a sim with no listener (in-process, as in tests)."""
        self._faults = faults

    def attach_listener(self, listener: ListenerSwitch) -> None:
        """Let the `refuse` fault open and close the main port."""
        self._listener = listener

    async def set_faults(self, faults: FaultSettings) -> None:
        """Switch faults; `refuse` closes the main port's listening sockets, others reopen them."""
        self._faults = faults
        if self._listener is not None:
            await self._listener.set_accepting(faults.mode is not FaultMode.REFUSE)

    def draw_fault(self) -> FaultMode:
        """The fault for the next inference request (seeded, in arrival order)."""
        mode = fault_for_request(self._faults, draw=self._fault_rng.random())
        if mode is not FaultMode.NONE:
            self.counters.record_fault()
        return mode

    def is_loading(self) -> bool:
        """True during the start-up delay in which llama.cpp answers 503 "Loading model"."""
        return (
            self._clock() - self._started_at < self.settings.loading_delay_s / self.settings.speed
        )

    def serves_model(self, name: str) -> bool:
        """llama.cpp answers under any name; vLLM, Ollama and OpenAI only under the served one."""
        return not name or name == self.settings.model or self.settings.engine is Engine.LLAMACPP

    def completion_id(self, kind: CompletionKind) -> str:
        """A fresh id in OpenAI's style."""
        prefix = "chatcmpl" if kind is CompletionKind.CHAT else "cmpl"
        return f"{prefix}-sim{self.settings.seed}-{next(self._ids)}"

    def plan(self, request: CompletionRequest) -> GenerationPlan:
        """Decide the output of a request: length from max_tokens, text from seed and prompt."""
        count, finish = output_length(
            self.settings.profile,
            max_tokens=request.max_tokens,
            prompt_tokens=request.prompt_tokens,
        )
        tokens = generate_tokens(
            seed=self.settings.seed, prompt_text=request.prompt_text, count=count
        )
        return GenerationPlan(request=request, tokens=tokens, finish=finish)

    async def generate(self, plan: GenerationPlan) -> AsyncGenerator[str, None]:
        """Wait for a slot (deferred), process the prompt, then yield tokens at the model's pace."""
        self.counters.enter()
        finished = False
        try:
            async with self.pool.slot(), aclosing(self._decode(plan)) as tokens:
                async for token in tokens:
                    yield token
            finished = True
        finally:
            self.counters.leave(completed=finished)

    async def _decode(self, plan: GenerationPlan) -> AsyncGenerator[str, None]:
        prompt_tokens = plan.request.prompt_tokens
        self._heat()
        self.counters.start_generation(prompt_tokens)
        generated = 0
        try:
            deadline = self._loop_time() + self._ttft_s(prompt_tokens)
            await _sleep_until(deadline)
            self.counters.prompt_done(prompt_tokens)
            for token in plan.tokens:
                if generated:
                    deadline += self._token_interval_s()
                    await _sleep_until(deadline)
                self.counters.token_generated()
                generated += 1
                yield token
        finally:
            self._heat()
            self.counters.end_generation(prompt_tokens + generated)

    def _ttft_s(self, prompt_tokens: int) -> float:
        busy = self.counters.processing
        speed = self.settings.speed
        return time_to_first_token_s(
            self.settings.profile, prompt_tokens=prompt_tokens, busy_slots=busy, speed=speed
        )

    def _token_interval_s(self) -> float:
        busy = self.counters.processing
        return token_interval_s(self.settings.profile, busy_slots=busy, speed=self.settings.speed)

    @staticmethod
    def _loop_time() -> float:
        return asyncio.get_running_loop().time()

    def _util_pct(self) -> int:
        return gpu_util_pct(busy_slots=self.counters.processing, slots=self.settings.slots)

    def _heat(self) -> None:
        """Bring the temperature up to now under the load that held until now."""
        self._thermal = advance_temperature(
            self._thermal,
            util_pct=self._util_pct(),
            now_s=self._clock(),
            time_constant_s=THERMAL_TIME_CONSTANT_S / self.settings.speed,
        )

    def reading(self) -> GpuReading:
        """What the sidecar reports now."""
        self._heat()
        vram = vram_used_mb(
            self.settings.profile,
            active_contexts=self.counters.processing,
            vram_total_mb=self.settings.vram_total_mb,
        )
        return GpuReading(
            gpu_util_pct=self._util_pct(),
            vram_used_mb=vram,
            vram_total_mb=self.settings.vram_total_mb,
            temp_c=round(self._thermal.temp_c, 1),
        )

    def load(self) -> LoadSnapshot:
        """Current load for the engine metric endpoints."""
        return self.counters.snapshot(self.settings.slots)


async def _sleep_until(deadline: float) -> None:
    delay = deadline - asyncio.get_running_loop().time()
    await asyncio.sleep(delay if delay > MIN_SLEEP_S else 0)
