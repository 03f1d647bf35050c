"""The pages smartqueue serves itself: /dashboard and the API explorers, all without a CDN."""

from __future__ import annotations

import re

import httpx
import pytest

OUTSIDE_URL = re.compile(rb"https?://(?!localhost|127\.0\.0\.1)[A-Za-z0-9.-]+")
PAGES = ["/dashboard", "/dashboard/dashboard.js", "/dashboard/dashboard.css", "/docs", "/redoc"]


@pytest.mark.parametrize("path", PAGES)
async def test_page_served_from_the_service_names_no_outside_url(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert OUTSIDE_URL.findall(response.content) == []


@pytest.mark.parametrize(
    ("asset", "media_type"),
    [("swagger-ui-bundle.js", "text/javascript"), ("swagger-ui.css", "text/css"),
     ("redoc.standalone.js", "text/javascript"), ("favicon.png", "image/png")],
)  # fmt: skip
async def test_docs_asset_served_from_pinned_package(
    client: httpx.AsyncClient, asset: str, media_type: str
) -> None:
    response = await client.get(f"/docs/assets/{asset}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(media_type)
    assert len(response.content) > 1000


async def test_redoc_bundle_logo_points_at_local_favicon(client: httpx.AsyncClient) -> None:
    bundle = (await client.get("/docs/assets/redoc.standalone.js")).content
    assert b"cdn.redoc.ly" not in bundle


@pytest.mark.parametrize("path", ["/docs/assets/../../etc/passwd", "/docs/assets/x.js"])
async def test_docs_asset_outside_the_list_is_not_found(
    client: httpx.AsyncClient, path: str
) -> None:
    assert (await client.get(path)).status_code == 404


async def test_dashboard_asset_outside_the_list_is_not_found(client: httpx.AsyncClient) -> None:
    assert (await client.get("/dashboard/dashboard.html")).status_code == 404


async def test_overview_with_fresh_replica_counts_no_ended_job(client: httpx.AsyncClient) -> None:
    jobs = (await client.get("/status")).json()["jobs"]
    assert jobs == {"completed": 0, "cancelled": 0}
