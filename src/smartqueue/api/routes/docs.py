"""The API explorers (`/docs` Swagger UI, `/redoc` ReDoc) with their assets served from here.

FastAPI's own pages load Swagger UI and ReDoc from a public CDN, which is a blank page in a
fleet's private network; the pinned `fastapi-offline` package ships the same bundles.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Literal, get_args

from fastapi import APIRouter, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse, Response

from smartqueue.errors import NotFound

router = APIRouter(include_in_schema=False)

ASSETS_PATH = "/docs/assets"
OAUTH2_REDIRECT_PATH = "/docs/oauth2-redirect"
Asset = Literal["swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png"]
MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
ASSET_CACHE = "public, max-age=86400"
# ReDoc's menu footer loads Redocly's logo from their CDN: point it at the local favicon
# (relative to /redoc) so the page makes no outside request at all.
REDOC_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
LOCAL_LOGO = b"docs/assets/favicon.png"


def _asset_url(request: Request, name: Asset) -> str:
    return f"{request.scope.get('root_path', '')}{ASSETS_PATH}/{name}"


def _openapi_url(request: Request) -> str:
    return f"{request.scope.get('root_path', '')}{request.app.openapi_url}"


@router.get("/docs")
async def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI over this service's OpenAPI schema, with no outside request."""
    return get_swagger_ui_html(
        openapi_url=_openapi_url(request),
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=_asset_url(request, "swagger-ui-bundle.js"),
        swagger_css_url=_asset_url(request, "swagger-ui.css"),
        swagger_favicon_url=_asset_url(request, "favicon.png"),
        oauth2_redirect_url=OAUTH2_REDIRECT_PATH,
    )


@router.get(OAUTH2_REDIRECT_PATH)
async def swagger_ui_redirect() -> HTMLResponse:
    """Swagger UI's OAuth2 redirect page."""
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    """ReDoc over this service's OpenAPI schema, without web fonts or a CDN."""
    return get_redoc_html(
        openapi_url=_openapi_url(request),
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=_asset_url(request, "redoc.standalone.js"),
        redoc_favicon_url=_asset_url(request, "favicon.png"),
        with_google_fonts=False,
    )


@router.get(f"{ASSETS_PATH}/{{name}}")
async def docs_asset(name: str) -> Response:
    """One bundled file of Swagger UI or ReDoc."""
    if name not in get_args(Asset):
        raise NotFound(f"no docs asset {name!r}")
    media_type = MEDIA_TYPES[name[name.rindex(".") :]]
    return Response(
        _read_asset(name), media_type=media_type, headers={"Cache-Control": ASSET_CACHE}
    )


@cache
def _read_asset(name: Asset) -> bytes:
    content = files("fastapi_offline").joinpath("static", name).read_bytes()
    return content.replace(REDOC_LOGO, LOCAL_LOGO) if name == "redoc.standalone.js" else content
