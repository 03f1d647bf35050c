"""Redis run for high availability: Sentinel failover and Redis Cluster, as real processes.

The fixtures of the engine and chaos tests (sims, settings, replicas as processes) apply here.
"""

from __future__ import annotations

from tests.chaos.conftest import chaos_settings, engine_settings, replicas, sims

__all__ = ["chaos_settings", "engine_settings", "replicas", "sims"]
