"""The job store: the only package that talks to Redis.

`Store` composes one part per concept, each in its own module: `submissions` (admission and
enqueue), `jobs` (records, results, position, cancel), `claims` (peek, take, renew, commit, retry,
reclaim, expiry), `dlq`, `breakers`, `consumers`, `events`, `overview`, `speeds` (each GPU's
learned speed), and for the Batch API
`files` (records; the bytes are in the blob directory) and `batches` (feeding, ending). Every
multi-key change is one Lua script (lua/, built in scripts.py); every key name is in keys.py.

Data model:
- one stream per (priority, route) holds jobs waiting for dispatch; each entry carries the job
  id, the request body, the allow-listed headers and the job's size (estimated prompt tokens,
  max_tokens). These streams have no consumer group: the dispatcher reads a window of them
  without payloads (PEEK) and takes the entry its planner chose, in any order (TAKE).
- TAKE moves the entry to the one `running` stream, read by the one consumer group in the same
  step: its pending list says who holds each running job (renewal, reclaim of a silent
  consumer's jobs, refusal of a late commit). Per GPU, a sorted set holds the slot leases and a
  hash the running jobs' predicted ends; a hash per GPU holds its learned speed.
- one small hash per job is its record (status, route, priority, attempts, timestamps, result);
  queued and running records never expire, terminal ones expire on their own after a TTL.
- the dead-letter queue is a stream of its own; moving a job there is one XADD.
- a batch is a hash (status, counts, feeding cursor); its requests are fed a few at a time
  into per-route `batch` streams as ordinary jobs, and each request's end keeps its output or
  error line in the batch's lines hash (once per custom_id) in the same script as the job's.
Hash tags: every key starts with `{<prefix>}`, so all keys of a deployment share one Redis
Cluster slot and any script may touch any of them; each script still declares every key it
touches in KEYS, and none builds or parses a key name inside Redis.
Deployments (connection.py): one Redis, Sentinel (the client asks the sentinels for the primary
on every reconnect) or Cluster. What the store uses works on all three: pipelines and MULTI
transactions touch one slot, blocking reads (BLPOP, XREAD BLOCK) name one key, pub/sub is classic
(a cluster delivers PUBLISH on every node), and with min replicas the enqueue script and its
WAIT share one connection (scripts.Scripts.run_replicated).
Imports: only this package imports redis; it returns the queue's values (smartqueue.queue),
never HTTP answers.
"""

from __future__ import annotations

from smartqueue.config import Settings
from smartqueue.store.batches import Batches
from smartqueue.store.breakers import Breakers
from smartqueue.store.claims import Claims
from smartqueue.store.connection import Client, close_client, new_client, translate_errors
from smartqueue.store.consumers import Consumers
from smartqueue.store.context import StoreContext
from smartqueue.store.dlq import DeadLetters
from smartqueue.store.events import Events
from smartqueue.store.files import Files
from smartqueue.store.jobs import Jobs
from smartqueue.store.keys import Keys
from smartqueue.store.overview import Overview
from smartqueue.store.scripts import Scripts
from smartqueue.store.speeds import Speeds
from smartqueue.store.submissions import Submissions

__all__ = ["Store"]


class Store:
    """Jobs, streams, dead letters and consumers in Redis, one part per concept."""

    def __init__(
        self,
        client: Client,
        *,
        keys: Keys,
        routes: list[str],
        terminal_ttl_s: int = 86_400,
        idempotency_ttl_s: int = 86_400,
        socket_timeout_s: float = 1.0,
        events_ttl_s: int = 600,
        min_replicas: int = 0,
        replica_wait_s: float = 0.5,
    ) -> None:
        self.redis = client
        self.keys = keys
        self.routes = routes
        max_block_ms = max(1, int(socket_timeout_s * 500))
        context = StoreContext(client, keys, Scripts(client), routes, terminal_ttl_s,
                               idempotency_ttl_s, max_block_ms, events_ttl_s, min_replicas,
                               min(max_block_ms, max(1, int(replica_wait_s * 1000))))  # fmt: skip
        self.submissions = Submissions(context)
        self.jobs = Jobs(context)
        self.claims = Claims(context)
        self.dlq = DeadLetters(context)
        self.breakers = Breakers(context)
        self.consumers = Consumers(context)
        self.events = Events(context)
        self.overview = Overview(context)
        self.files = Files(context)
        self.batches = Batches(context)
        self.speeds = Speeds(context)

    @classmethod
    def connect(cls, settings: Settings, *, routes: list[str]) -> Store:
        """A store for `settings` (the connection opens lazily)."""
        return cls(
            new_client(settings),
            keys=Keys(settings.key_prefix),
            routes=routes,
            terminal_ttl_s=settings.terminal_ttl_s,
            idempotency_ttl_s=settings.idempotency_ttl_s,
            socket_timeout_s=settings.redis_timeout_s,
            events_ttl_s=settings.events_ttl_s,
            min_replicas=settings.redis_min_replicas,
            replica_wait_s=settings.redis_replica_wait_s,
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await close_client(self.redis)

    @translate_errors
    async def ping(self) -> None:
        """Raise StoreUnavailable unless Redis answers."""
        await self.redis.ping()

    async def ensure_groups(self) -> None:
        """Create the running stream's consumer group (harmless when it exists)."""
        await self.claims.ensure_groups()
