"""GET /v1/models as the OpenAI SDK reads it."""

from __future__ import annotations

import httpx
from openai import AsyncOpenAI

from smartqueue.config import FleetConfig
from tests.conftest import REPO


async def test_models_list_through_the_openai_client_has_every_model_and_route(
    client: httpx.AsyncClient, local_fleet: FleetConfig
) -> None:
    # The SDK takes a legacy httpx client at run time; its annotation names httpx2 only.
    sdk = AsyncOpenAI(base_url="http://sq/v1", api_key="unused", http_client=client)  # type: ignore[arg-type]

    listed = [model async for model in sdk.models.list()]

    expected = [gpu.model for gpu in local_fleet.gpus] + local_fleet.route_names
    assert [model.id for model in listed] == expected
    assert {model.owned_by for model in listed} == {"amdpve", "llmgpu", "ocu_llm", "smartqueue"}
    assert all(isinstance(model.created, int) and model.created > 0 for model in listed)


async def test_models_created_is_the_fleet_file_time(
    client: httpx.AsyncClient, local_fleet: FleetConfig
) -> None:
    data = (await client.get("/v1/models")).json()["data"]

    modified_at = int((REPO / "deploy" / "fleet.local.yaml").stat().st_mtime)
    assert local_fleet.modified_at == modified_at
    assert {model["created"] for model in data} == {modified_at}
