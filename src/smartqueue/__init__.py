"""smartqueue: a GPU-aware inference queue and router for a self-hosted LLM fleet.

The layers, and what each may import (tests/unit/test_boundaries.py keeps them honest):
- pure core — models, queue (the queue's vocabulary), policy, breaker, scoring,
  openai_format, sse, batches (the Batch API's lines and statuses): decisions and formats,
  `now` passed in; no redis, httpx, fastapi or asyncio.
- store/ — the only package that imports redis: Lua scripts and one part per concept.
- the engine — dispatcher (read -> choose -> claim -> call -> record), outcomes, maintenance
  (with batch_runner: batches fed, stopped and ended; blobs: file bytes on a shared volume),
  fleet_state, fleet (probes) and gpu_client (the only modules besides the probes that use
  httpx): they use the store and the pure core.
- api/ — the FastAPI app: routes call the engine's objects and the store, never Redis itself.
- around it — config (settings and the fleet file), nginx (renders the router config), stack
  (`make run`), cli, serve. The simulated GPU and the GPU sidecar are sibling packages
  (smartqueue_sim, smartqueue_sidecar), not part of the service.
"""

__version__ = "0.1.0"
