"""smartqueue: a GPU-aware inference queue and router for a self-hosted LLM fleet."""

__version__ = "0.1.0"
