"""What the routes share: settings, fleet, store and metrics, owned by the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from smartqueue.config import FleetConfig, Settings
from smartqueue.metrics import Metrics
from smartqueue.policy import Backpressure
from smartqueue.store import Store


@dataclass
class Services:
    """The app's shared objects, built once at start-up."""

    settings: Settings
    fleet: FleetConfig
    store: Store
    metrics: Metrics
    backpressure: Backpressure

    @classmethod
    def build(cls, settings: Settings, fleet: FleetConfig) -> Services:
        """Services for `settings` and `fleet` (the Redis pool connects lazily)."""
        return cls(
            settings=settings,
            fleet=fleet,
            store=Store.connect(settings, routes=fleet.route_names),
            metrics=Metrics(),
            backpressure=Backpressure.from_settings(settings),
        )
