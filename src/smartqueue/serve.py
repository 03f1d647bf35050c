"""`smartqueue serve`: load the settings and the fleet file, then run the service."""

from __future__ import annotations

import logging
from typing import Annotated

import typer
from pydantic import ValidationError

from smartqueue.config import (
    ENV_PREFIX,
    FleetError,
    Settings,
    describe_validation_error,
    load_fleet,
)
from smartqueue.logs import configure_logging


def serve_command(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8091,
    log_level: Annotated[
        str | None, typer.Option(help="debug, info, warning, error (default: SMARTQUEUE_LOG_LEVEL)")
    ] = None,
) -> None:
    """Run the smartqueue service (settings from SMARTQUEUE_* env vars)."""
    import uvicorn  # the service's imports load only for this command

    from smartqueue.api.app import create_app
    from smartqueue.http_server import HeaderLimitedHttpToolsProtocol

    configure_logging(log_level or "info")
    try:
        settings = Settings()
        fleet = load_fleet(settings.fleet)
        configure_logging(log_level or settings.log_level)
    except ValidationError as error:
        message = describe_validation_error(error, env_prefix=ENV_PREFIX)
        typer.echo(f"smartqueue: settings: {message}", err=True)
        raise typer.Exit(code=2) from None
    except FleetError as error:
        typer.echo(f"smartqueue: {error}", err=True)
        raise typer.Exit(code=2) from None
    logging.getLogger(__name__).info(
        "serving", extra={"host": host, "port": port, "gpus": [g.name for g in fleet.gpus]}
    )
    uvicorn.run(
        create_app(settings, fleet),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=max(1, int(settings.shutdown_grace_s)),
        http=HeaderLimitedHttpToolsProtocol,  # httptools, with a 431 for an oversized header block
        h11_max_incomplete_event_size=settings.max_header_block_bytes,
    )
