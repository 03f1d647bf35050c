"""What the routes share: settings, fleet, store, metrics and the engine, owned by the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx

from smartqueue.api.submission import Admissions
from smartqueue.config import FleetConfig, Settings
from smartqueue.dispatcher import Dispatcher
from smartqueue.fleet import FleetProber
from smartqueue.gpu_client import GpuClient, new_http_client
from smartqueue.metrics import Metrics
from smartqueue.policy import Backpressure
from smartqueue.store import Store
from smartqueue.watch import JobWatch

log = logging.getLogger(__name__)


def owner_secret(settings: Settings) -> bytes:
    """The HMAC key for job owners: SMARTQUEUE_OWNER_SECRET, else a random one for this run."""
    if settings.owner_secret is not None and settings.owner_secret.get_secret_value():
        return settings.owner_secret.get_secret_value().encode()
    log.warning("SMARTQUEUE_OWNER_SECRET is not set: using a random owner secret; job owners "
                "will not survive a restart nor match across replicas")  # fmt: skip
    return secrets.token_bytes(32)


@dataclass
class Services:
    """The app's shared objects, built once at start-up."""

    settings: Settings
    fleet: FleetConfig
    store: Store
    metrics: Metrics
    backpressure: Backpressure
    http: httpx.AsyncClient
    prober: FleetProber
    watch: JobWatch
    dispatcher: Dispatcher | None
    admissions: Admissions
    owner_secret: bytes = b""

    @classmethod
    def build(
        cls, settings: Settings, fleet: FleetConfig, *, http: httpx.AsyncClient | None = None
    ) -> Services:
        """Services for `settings` and `fleet` (connections open lazily).

        `http` replaces the client that reaches the GPUs (tests route it to in-process GPUs).
        """
        store = Store.connect(settings, routes=fleet.route_names)
        metrics = Metrics()
        http = http or new_http_client(connect_timeout_s=settings.connect_timeout_s)
        prober = FleetProber(
            fleet,
            http,
            interval_s=settings.probe_interval_s,
            timeout_s=settings.probe_timeout_s,
            in_flight=lambda names: store.claims.slots_in_use(names, now=time.time()),
        )
        gpu_client = GpuClient(http, fleet, max_result_bytes=settings.max_result_bytes)
        watch = JobWatch(store)
        dispatcher = Dispatcher(settings, fleet, store=store, gpu_client=gpu_client,
                                prober=prober, metrics=metrics, watch=watch)  # fmt: skip
        backpressure = Backpressure.from_settings(settings)
        return cls(settings, fleet, store, metrics, backpressure, http, prober, watch,
                   dispatcher if dispatcher.consumers else None,
                   Admissions(store, backpressure, metrics), owner_secret(settings))  # fmt: skip

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run the engine (when it has consumers) for the app's lifetime, then close everything."""
        watch = asyncio.create_task(self.watch.run())
        engine = asyncio.create_task(self.dispatcher.run()) if self.dispatcher else None
        try:
            yield
        finally:
            if engine is not None:
                await self._stop_engine(engine)
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
            await self.http.aclose()
            await self.store.aclose()

    async def _stop_engine(self, engine: asyncio.Task[None]) -> None:
        assert self.dispatcher is not None
        self.dispatcher.stop()
        try:
            await asyncio.wait_for(asyncio.shield(engine), self.settings.shutdown_grace_s)
        except TimeoutError:
            log.warning("grace period over: releasing running jobs")
            engine.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await engine
