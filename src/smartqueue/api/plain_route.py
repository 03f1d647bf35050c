"""A route documented like any other whose endpoint takes the request and builds its answer.

FastAPI's own handler solves dependencies, validates parameters and the response model on every
request; on the hottest route that costs more than the work itself. A `PlainRoute` keeps the
OpenAPI description (response model, error responses, `openapi_extra`) and calls the endpoint
with the bare `Request`: the endpoint parses headers and serialises its answer itself.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, cast

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

Endpoint = Callable[[Request], Coroutine[Any, Any, Response]]


class PlainRoute(APIRoute):
    """An APIRoute whose endpoint is `async def endpoint(request) -> Response`."""

    def get_route_handler(self) -> Endpoint:
        """The endpoint itself: no dependency solving, no response validation."""
        return cast(Endpoint, self.endpoint)


def header_parameter(name: str, description: str) -> dict[str, Any]:
    """An optional string header as FastAPI documents `Annotated[str | None, Header()]`."""
    title = "-".join(part.capitalize() for part in name.split("-"))
    schema = {"anyOf": [{"type": "string"}, {"type": "null"}], "title": title,
              "description": description}  # fmt: skip
    return {"name": name, "in": "header", "required": False, "schema": schema,
            "description": description}  # fmt: skip
