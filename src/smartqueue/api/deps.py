"""Dependencies the routes declare, as `Annotated` aliases (all async: no threadpool hop)."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Header, Request

from smartqueue.api.services import Services
from smartqueue.api.submission import Admissions
from smartqueue.blobs import Blobs
from smartqueue.config import FleetConfig, Settings
from smartqueue.errors import AdminDisabled, Unauthorized
from smartqueue.owners import Caller, owner_of
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


def is_admin(settings: Settings, authorization: str | None) -> bool:
    """True when `authorization` is `Bearer $SMARTQUEUE_ADMIN_TOKEN` (and a token is set)."""
    token = settings.admin_token
    if token is None or not token.get_secret_value():
        return False
    scheme, _, presented = (authorization or "").partition(" ")
    expected = token.get_secret_value().encode()
    return scheme.lower() == "bearer" and secrets.compare_digest(presented.encode(), expected)


async def require_admin(
    settings: SettingsDep,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> None:
    """Refuse unless the request carries `Authorization: Bearer $SMARTQUEUE_ADMIN_TOKEN`."""
    token = settings.admin_token
    if token is None or not token.get_secret_value():
        raise AdminDisabled("admin operations are disabled: set SMARTQUEUE_ADMIN_TOKEN")
    if not is_admin(settings, authorization):
        raise Unauthorized("admin operation: send 'Authorization: Bearer <admin token>'")


AdminDep = Depends(require_admin)


def caller_of(services: Services, request: Request) -> Caller:
    """Who is asking: the owner their Authorization stands for, and whether they are admin."""
    authorization = request.headers.get("authorization")
    owner = owner_of(authorization, secret=services.owner_secret)
    return Caller(owner, admin=is_admin(services.settings, authorization))


async def get_caller(services: ServicesDep, request: Request) -> Caller:
    """Who is asking (caller_of)."""
    return caller_of(services, request)


CallerDep = Annotated[Caller, Depends(get_caller)]


async def get_owner(caller: CallerDep) -> str:
    """Who owns what the caller creates (jobs, batches, files): smartqueue.owners.owner_of."""
    return caller.owner


OwnerDep = Annotated[str, Depends(get_owner)]


async def get_blobs(settings: SettingsDep) -> Blobs:
    """The blob directory (file bytes)."""
    return Blobs(settings.blob_dir)


BlobsDep = Annotated[Blobs, Depends(get_blobs)]
