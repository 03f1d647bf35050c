"""`GET /dashboard`: the live operator page (plain HTML, CSS and JS shipped in the package)."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from smartqueue.errors import NotFound

router = APIRouter(tags=["dashboard"])

MEDIA_TYPES = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}


@router.get("/dashboard", response_class=HTMLResponse, summary="Live dashboard")
async def dashboard() -> HTMLResponse:
    """Queue depth over time, jobs by status, GPUs, consumers and the DLQ, updated live."""
    return HTMLResponse(_read_static("dashboard.html"), headers={"Cache-Control": "no-cache"})


@router.get("/dashboard/{name}", include_in_schema=False)
async def dashboard_asset(name: str) -> Response:
    """The dashboard's script or style sheet."""
    if name not in MEDIA_TYPES:
        raise NotFound(f"no dashboard file {name!r}")
    return Response(
        _read_static(name), media_type=MEDIA_TYPES[name], headers={"Cache-Control": "no-cache"}
    )


@cache
def _read_static(name: str) -> bytes:
    return files("smartqueue.api").joinpath("static", name).read_bytes()
