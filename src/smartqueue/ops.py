"""Operator commands over the HTTP API: status, jobs inspect/cancel, dlq list/retry/discard.

They talk to a running service (`--url`, env `SMARTQUEUE_URL`) and print its JSON answer; the
admin token for DLQ changes comes from `SMARTQUEUE_ADMIN_TOKEN`.
"""

from __future__ import annotations

import json
import os
from typing import Annotated, Any

import httpx
import typer

DEFAULT_URL = "http://127.0.0.1:8091"

UrlOption = Annotated[str, typer.Option(envvar="SMARTQUEUE_URL", help="The service's base URL")]

jobs_app = typer.Typer(no_args_is_help=True, help="Inspect or cancel one job.")
dlq_app = typer.Typer(no_args_is_help=True, help="The dead-letter queue.")


def call_api(method: str, url: str, path: str, *, admin: bool = False, **params: Any) -> Any:
    """One API call; prints the error's message and exits 1 when it fails."""
    headers = {}
    token = os.environ.get("SMARTQUEUE_ADMIN_TOKEN")
    if admin and token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        response = httpx.request(method, url.rstrip("/") + path, headers=headers,
                                 params=params or None, timeout=10.0)  # fmt: skip
    except httpx.HTTPError as error:
        typer.echo(f"smartqueue: cannot reach {url}: {error}", err=True)
        raise typer.Exit(code=1) from None
    if response.status_code >= 400:
        typer.echo(f"smartqueue: {response.status_code} {_message(response)}", err=True)
        raise typer.Exit(code=1)
    return response.json() if response.content else {}


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200]


def show(document: Any) -> None:
    """Print an answer as indented JSON."""
    typer.echo(json.dumps(document, indent=2, sort_keys=False))


def status(url: UrlOption = DEFAULT_URL) -> None:
    """The queue at a glance: depth, in flight, DLQ, consumers, GPUs."""
    show(call_api("GET", url, "/status"))


@jobs_app.command("inspect")
def inspect_job(job_id: str, url: UrlOption = DEFAULT_URL) -> None:
    """A job's record: status, attempts, GPU, timestamps, result or error."""
    show(call_api("GET", url, f"/status/{job_id}"))


@jobs_app.command("cancel")
def cancel_job(job_id: str, url: UrlOption = DEFAULT_URL) -> None:
    """Cancel a job (a queued one never runs; a running one is aborted)."""
    show(call_api("POST", url, f"/status/{job_id}/cancel"))


@dlq_app.command("list")
def list_dlq(
    url: UrlOption = DEFAULT_URL, limit: Annotated[int, typer.Option(min=1, max=1000)] = 100
) -> None:
    """Dead jobs with reason, attempts and last error."""
    show(call_api("GET", url, "/dlq", limit=limit))


@dlq_app.command("retry")
def retry_dlq(entry_id: str, url: UrlOption = DEFAULT_URL) -> None:
    """Re-run a dead job as a new job (admin)."""
    show(call_api("POST", url, f"/dlq/{entry_id}/retry", admin=True))


@dlq_app.command("discard")
def discard_dlq(entry_id: str, url: UrlOption = DEFAULT_URL) -> None:
    """Delete a dead-letter entry (admin)."""
    call_api("DELETE", url, f"/dlq/{entry_id}", admin=True)
    typer.echo(f"discarded {entry_id}")


def register(app: typer.Typer) -> None:
    """Add the operator commands to the `smartqueue` command."""
    app.command("status")(status)
    app.add_typer(jobs_app, name="jobs")
    app.add_typer(dlq_app, name="dlq")
