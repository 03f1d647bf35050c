"""Dependencies the routes declare, as `Annotated` aliases."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Header, Request

from smartqueue.api.services import Services
from smartqueue.errors import AdminDisabled, Unauthorized
from smartqueue.store import Store


def get_services(request: Request) -> Services:
    """The app's shared services."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_store(services: ServicesDep) -> Store:
    """The job store."""
    return services.store


StoreDep = Annotated[Store, Depends(get_store)]


def require_admin(
    services: ServicesDep,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> None:
    """Refuse unless the request carries `Authorization: Bearer $SMARTQUEUE_ADMIN_TOKEN`."""
    token = services.settings.admin_token
    if token is None or not token.get_secret_value():
        raise AdminDisabled("admin operations are disabled: set SMARTQUEUE_ADMIN_TOKEN")
    scheme, _, presented = (authorization or "").partition(" ")
    expected = token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not secrets.compare_digest(presented.encode(), expected):
        raise Unauthorized("admin operation: send 'Authorization: Bearer <admin token>'")


AdminDep = Depends(require_admin)
