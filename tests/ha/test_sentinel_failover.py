"""Sentinel failover under load: a replica of smartqueue follows the new primary, and with
SMARTQUEUE_REDIS_MIN_REPLICAS=1 no job answered 202 is lost (kill -9 or a frozen primary).

Each test runs a primary, a replica and three sentinels (down after 1 s), one sim GPU and one
smartqueue process pointed at the sentinels, submits steadily through the disruption, then
prints the figures.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from smartqueue.config import Settings
from tests.chaos.conftest import StartReplicas, client_of
from tests.engine.conftest import CHAT, fleet_for
from tests.ha.load import Figures, Load, settle, steady_load
from tests.support.redis_ha import SentinelDeployment, sentinel_deployment
from tests.support.sim import SimHandle
from tests.support.waiting import wait_until

LOAD_S = 2.0  # steady load before the disruption, and again once service is back
LAG_S = 0.5  # under the sentinels' down-after: the stalled replica stays eligible
FILLER_BYTES = 64 * 1024 * 1024
HA_SETTINGS: dict[str, Any] = {
    "reconcile_interval_s": 1.0, "ceiling_low": 5000, "ceiling_normal": 5000,
    "ceiling_high": 5000, "queue_warn_depth": 5000, "queue_overload_depth": 5000,
    "queue_open_depth": 5000,
}  # fmt: skip


async def _service_back(load: Load, since: float) -> None:
    async def accepting() -> bool:
        return load.accepted_after(since) > 0

    await wait_until(accepting, timeout_s=30, what="a 202 after the failover", interval_s=0.05)


async def _promoted_and_settled(ha: SentinelDeployment, *, away_from: int) -> None:
    """Wait until a replica is promoted and every sentinel follows it."""
    await asyncio.to_thread(ha.wait_promoted, away_from=away_from)
    port = ha.primary_port()
    assert port is not None
    await asyncio.to_thread(ha.wait_settled, port)


async def _kill_primary(ha: SentinelDeployment) -> None:
    """kill -9 the primary; once a replica is promoted, restart it (it rejoins as a replica)."""
    old = ha.primary.port
    ha.primary.kill()
    await _promoted_and_settled(ha, away_from=old)
    ha.primary.start()
    await asyncio.to_thread(ha.wait_replicating, ha.primary)


async def _kill_primary_while_replica_lags(ha: SentinelDeployment) -> None:
    """The replica stalls behind a large write, and the primary dies before it catches up.

    Replication is asynchronous: what the primary acknowledged after the large write is still
    in its output buffer when it dies, and the replica then promoted never sees it. (On loopback
    a replica is otherwise never behind long enough for a kill to land in between.)
    """
    ha.replica.freeze()
    try:
        with redis.Redis(port=ha.primary.port) as primary:
            primary.set("filler", b"x" * FILLER_BYTES)  # more than the sockets buffer
        await asyncio.sleep(LAG_S)
        old = ha.primary.port
        ha.primary.kill()
    finally:
        ha.replica.thaw()
    await _promoted_and_settled(ha, away_from=old)
    ha.primary.start()
    await asyncio.to_thread(ha.wait_replicating, ha.primary)


async def _freeze_primary(ha: SentinelDeployment) -> None:
    """SIGSTOP the primary until a replica is promoted, then SIGCONT: it comes back demoted."""
    old = ha.primary.port
    ha.primary.freeze()
    try:
        await asyncio.to_thread(ha.wait_promoted, away_from=old)
    finally:
        ha.primary.thaw()
    await asyncio.to_thread(ha.wait_replicating, ha.primary)


async def _through(
    disrupt: Callable[[SentinelDeployment], Any], *, min_replicas: int, tmp_path: Path,
    sims: Callable[..., dict[str, SimHandle]], chaos_settings: Callable[..., Settings],
    replicas: StartReplicas,
) -> Figures:  # fmt: skip
    """Steady load through `disrupt`; the figures once every accepted job settled."""
    with sentinel_deployment(tmp_path / "redis") as ha:
        gpu = sims(a={"slots": 8})["a"]
        settings = chaos_settings(redis_url=ha.url, redis_min_replicas=min_replicas, **HA_SETTINGS)
        [replica] = replicas(settings, fleet_for({"a": gpu}, {"default": ["a"]}, {"a": 8}), 1)
        async with client_of(replica) as client:
            async with steady_load(client) as load:
                await asyncio.sleep(LOAD_S)
                disrupted = time.monotonic()
                await disrupt(ha)
                await _service_back(load, disrupted)
                await asyncio.sleep(LOAD_S)
            return await settle(client, load, gpu)


@pytest.mark.parametrize("min_replicas", [1, 0])
async def test_primary_kill9_under_load_promotes_replica_and_smartqueue_continues(
    min_replicas: int, tmp_path: Path, sims: Callable[..., dict[str, SimHandle]],
    chaos_settings: Callable[..., Settings], replicas: StartReplicas,
) -> None:  # fmt: skip
    figures = await _through(
        _kill_primary, min_replicas=min_replicas, tmp_path=tmp_path, sims=sims,
        chaos_settings=chaos_settings, replicas=replicas,
    )  # fmt: skip

    print(figures.line(f"sentinel failover, primary kill -9, min_replicas={min_replicas}"))
    assert figures.accepted > 0
    assert figures.completed + figures.lost == figures.accepted
    if min_replicas:
        assert figures.lost == 0


@pytest.mark.parametrize("min_replicas", [1, 0])
async def test_primary_kill9_while_replica_lags_loses_acknowledged_jobs_only_without_wait(
    min_replicas: int, tmp_path: Path, sims: Callable[..., dict[str, SimHandle]],
    chaos_settings: Callable[..., Settings], replicas: StartReplicas,
) -> None:  # fmt: skip
    figures = await _through(
        _kill_primary_while_replica_lags, min_replicas=min_replicas, tmp_path=tmp_path,
        sims=sims, chaos_settings=chaos_settings, replicas=replicas,
    )  # fmt: skip

    print(figures.line(f"sentinel failover, primary kill -9 while the replica lags {LAG_S} s "
                       f"behind, min_replicas={min_replicas}"))  # fmt: skip
    assert figures.completed + figures.lost == figures.accepted
    if min_replicas:
        assert figures.lost == 0


async def test_frozen_primary_comes_back_demoted_and_loses_no_acknowledged_job(
    tmp_path: Path, sims: Callable[..., dict[str, SimHandle]],
    chaos_settings: Callable[..., Settings], replicas: StartReplicas,
) -> None:  # fmt: skip
    figures = await _through(_freeze_primary, min_replicas=1, tmp_path=tmp_path, sims=sims,
                             chaos_settings=chaos_settings, replicas=replicas)  # fmt: skip

    print(figures.line("sentinel failover, primary frozen (SIGSTOP) then demoted, min_replicas=1"))
    assert figures.lost == 0
    assert figures.completed == figures.accepted


async def test_submission_whose_replica_does_not_confirm_answers_503_outcome_unknown(
    tmp_path: Path, sims: Callable[..., dict[str, SimHandle]],
    chaos_settings: Callable[..., Settings], replicas: StartReplicas,
) -> None:  # fmt: skip
    with sentinel_deployment(tmp_path / "redis") as ha:
        gpu = sims(a={"slots": 2})["a"]
        settings = chaos_settings(redis_url=ha.url, redis_min_replicas=1)
        [replica] = replicas(settings, fleet_for({"a": gpu}, {"default": ["a"]}, {"a": 2}), 1)
        async with client_of(replica) as client:
            confirmed = await client.post("/enqueue", json=CHAT)
            ha.replica.freeze()  # connected, silent: WAIT can't get its acknowledgement
            try:
                unconfirmed = await client.post("/enqueue", json=CHAT)
            finally:
                ha.replica.thaw()
            located = await _located(client, unconfirmed)

    assert confirmed.status_code == 202, confirmed.text
    assert unconfirmed.status_code == 503, unconfirmed.text
    assert unconfirmed.json()["error"]["code"] == "outcome_unknown"
    assert unconfirmed.headers["Retry-After"] == "1"
    assert located.status_code == 200  # written on the primary, just not confirmed


async def _located(client: httpx.AsyncClient, response: httpx.Response) -> httpx.Response:
    location = response.headers.get("Location")
    assert location, response.headers
    return await client.get(location)
