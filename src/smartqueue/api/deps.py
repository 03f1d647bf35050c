"""Dependencies the routes declare, as `Annotated` aliases (all async: no threadpool hop)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Annotated

from fastapi import Depends, Header, Request

from smartqueue.api.services import Services
from smartqueue.api.submission import Admissions
from smartqueue.blobs import Blobs
from smartqueue.config import FleetConfig, Settings
from smartqueue.errors import AdminDisabled, Unauthorized
from smartqueue.store import Store
from smartqueue.watch import JobWatch


async def get_services(request: Request) -> Services:
    """The app's shared services."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_store(services: ServicesDep) -> Store:
    """The job store."""
    return services.store


async def get_settings(services: ServicesDep) -> Settings:
    """The service settings."""
    return services.settings


async def get_fleet(services: ServicesDep) -> FleetConfig:
    """The fleet file."""
    return services.fleet


async def get_watch(services: ServicesDep) -> JobWatch:
    """Job-end notifications of this replica."""
    return services.watch


async def get_admissions(services: ServicesDep) -> Admissions:
    """Admission control."""
    return services.admissions


StoreDep = Annotated[Store, Depends(get_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
FleetDep = Annotated[FleetConfig, Depends(get_fleet)]
WatchDep = Annotated[JobWatch, Depends(get_watch)]
AdmissionsDep = Annotated[Admissions, Depends(get_admissions)]


async def require_admin(
    settings: SettingsDep,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> None:
    """Refuse unless the request carries `Authorization: Bearer $SMARTQUEUE_ADMIN_TOKEN`."""
    token = settings.admin_token
    if token is None or not token.get_secret_value():
        raise AdminDisabled("admin operations are disabled: set SMARTQUEUE_ADMIN_TOKEN")
    scheme, _, presented = (authorization or "").partition(" ")
    expected = token.get_secret_value().encode()
    if scheme.lower() != "bearer" or not secrets.compare_digest(presented.encode(), expected):
        raise Unauthorized("admin operation: send 'Authorization: Bearer <admin token>'")


AdminDep = Depends(require_admin)

ANONYMOUS = "anonymous"


async def get_owner(
    settings: SettingsDep,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> str:
    """Who owns what the caller creates: an HMAC of its credential, never the credential.

    Callers without a credential share the anonymous owner. Batches and files use only
    `OwnerDep`, so issue 9's owner function (jobs) can take this one's place in one line.
    """
    if not authorization:
        return ANONYMOUS
    secret = settings.owner_secret.get_secret_value() if settings.owner_secret else ""
    digest = hmac.new(secret.encode(), authorization.encode(), hashlib.sha256).hexdigest()
    return f"o-{digest[:32]}"


OwnerDep = Annotated[str, Depends(get_owner)]


async def get_blobs(settings: SettingsDep) -> Blobs:
    """The blob directory (file bytes)."""
    return Blobs(settings.blob_dir)


BlobsDep = Annotated[Blobs, Depends(get_blobs)]
