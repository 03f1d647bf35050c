"""Engine adapters: each engine's own load signals read into one normalised `EngineView`.

Pure: every module turns recorded bodies into a view; fetching them is the prober's job
(`smartqueue.fleet`). One module per engine: `llamacpp`, `vllm`, `ollama`, `generic`.
"""

from __future__ import annotations

from smartqueue.config import Engine
from smartqueue.engines import generic, llamacpp, ollama, vllm
from smartqueue.engines.view import EngineAdapter, EngineView

ADAPTERS: dict[Engine, EngineAdapter] = {
    Engine.LLAMACPP: llamacpp.ADAPTER,
    Engine.VLLM: vllm.ADAPTER,
    Engine.OLLAMA: ollama.ADAPTER,
    Engine.OPENAI: generic.ADAPTER,
}


def adapter_for(engine: Engine) -> EngineAdapter:
    """The adapter reading `engine`'s signals."""
    return ADAPTERS[engine]


__all__ = ["ADAPTERS", "EngineAdapter", "EngineView", "adapter_for"]
