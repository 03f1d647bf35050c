"""Circuit breakers shared by every replica: read, compare-and-set, change with retries."""

from __future__ import annotations

from collections.abc import Callable

from smartqueue.breaker import Breaker
from smartqueue.store import scripts
from smartqueue.store.codec import breaker_from_hash
from smartqueue.store.connection import translate_errors
from smartqueue.store.context import StoreContext
from smartqueue.store.scripts import Arg

CAS_TRIES = 5


class Breakers:
    """Each GPU's breaker as a hash with a version, changed only by compare-and-set."""

    def __init__(self, context: StoreContext) -> None:
        self.context = context

    @translate_errors
    async def read(self, gpus: list[str]) -> dict[str, tuple[Breaker, str]]:
        """Every GPU's breaker with its version (for compare-and-set)."""
        raw = await self.context.hashes([self.context.keys.breaker(gpu) for gpu in gpus])
        return {gpu: breaker_from_hash(fields) for gpu, fields in zip(gpus, raw, strict=True)}

    @translate_errors
    async def compare_and_set(self, gpu: str, breaker: Breaker, *, version: str) -> bool:
        """Write `breaker` if nobody changed it since `version` was read."""
        fields: list[Arg] = ["state", breaker.state.value, "failures", breaker.failures]
        for name in ("opened_at", "probe_deadline", "reason"):
            value = getattr(breaker, name)
            if value is not None:
                fields += [name, value]
        call = scripts.breaker_cas(breaker=self.context.keys.breaker(gpu), version=version,
                                   fields=fields)  # fmt: skip
        return bool(await self.context.scripts.run(call))

    async def change(
        self, gpu: str, change: Callable[[Breaker], Breaker]
    ) -> tuple[Breaker, Breaker] | None:
        """Apply `change` to a GPU's breaker (a few compare-and-set tries): (before, after).

        None when other replicas kept changing it; the caller's change is then moot.
        """
        for _ in range(CAS_TRIES):
            breaker, version = (await self.read([gpu]))[gpu]
            changed = change(breaker)
            if changed == breaker or await self.compare_and_set(gpu, changed, version=version):
                return breaker, changed
        return None
