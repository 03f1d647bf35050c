"""Simulated GPU server (`smartqueue-sim`): an OpenAI-compatible stand-in for llama.cpp, vLLM
and Ollama with engine metrics, a latency model, a metrics sidecar and switchable faults.

A product of its own beside the service: from `smartqueue` it uses only the fleet file's types
and their one-line validation messages (`smartqueue.config`); the service's image does not carry
it.

Pure cores: `latency` (timing), `faults` (which fault hits a request), `telemetry` (sidecar
numbers), `completions` (OpenAI bodies), `metrics` (Prometheus text), `state` (counters).
Shell: `slots` (waiting for a slot), `gpu` (one simulated GPU), `server` and `engine_routes`
(the OpenAI + engine app), `sidecar` (metrics + control app), `listener` (sockets that can stop
accepting), `runner`, `fleet` and `cli`.
"""
