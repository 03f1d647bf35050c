"""Operator commands over the HTTP API: status, gpus, drain, jobs inspect/cancel, dlq
list/retry/discard.

They talk to a running service (`--url`, env `SMARTQUEUE_URL`) and print its answer (JSON, or a
table for `gpus` and `drain`); the admin token for DLQ changes and drains comes from `--token`
or `SMARTQUEUE_ADMIN_TOKEN`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from typing import Annotated, Any

import httpx
import typer

DEFAULT_URL = "http://127.0.0.1:8091"

UrlOption = Annotated[str, typer.Option(envvar="SMARTQUEUE_URL", help="The service's base URL")]
TokenOption = Annotated[
    str | None, typer.Option(envvar="SMARTQUEUE_ADMIN_TOKEN", help="The admin token")
]

jobs_app = typer.Typer(no_args_is_help=True, help="Inspect or cancel one job.")
dlq_app = typer.Typer(no_args_is_help=True, help="The dead-letter queue.")


def call_api(
    method: str, url: str, path: str, *, admin: bool = False, token: str | None = None,
    **params: Any,
) -> Any:  # fmt: skip
    """One API call; prints the error's message and exits 1 when it fails.

    With `admin`, the admin token (`token`, else SMARTQUEUE_ADMIN_TOKEN, when set) goes along:
    the operator sees every owner's jobs and the job ids in listings.
    """
    headers = {}
    token = token or os.environ.get("SMARTQUEUE_ADMIN_TOKEN")
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


def render_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Rows under their headers in aligned columns (None shows as `-`)."""
    cells = [[str(h) for h in headers]] + [["-" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in cells)  # fmt: skip


def status(url: UrlOption = DEFAULT_URL) -> None:
    """The queue at a glance: depth, in flight, DLQ, consumers, GPUs."""
    show(call_api("GET", url, "/status", admin=True))


@jobs_app.command("inspect")
def inspect_job(job_id: str, url: UrlOption = DEFAULT_URL) -> None:
    """A job's record: status, attempts, GPU, timestamps, result or error."""
    show(call_api("GET", url, f"/status/{job_id}", admin=True))


@jobs_app.command("cancel")
def cancel_job(job_id: str, url: UrlOption = DEFAULT_URL) -> None:
    """Cancel a job (a queued one never runs; a running one is aborted)."""
    show(call_api("POST", url, f"/status/{job_id}/cancel", admin=True))


@dlq_app.command("list")
def list_dlq(
    url: UrlOption = DEFAULT_URL, limit: Annotated[int, typer.Option(min=1, max=1000)] = 100
) -> None:
    """Dead jobs with reason, attempts and last error."""
    show(call_api("GET", url, "/dlq", admin=True, limit=limit))


@dlq_app.command("retry")
def retry_dlq(entry_id: str, url: UrlOption = DEFAULT_URL) -> None:
    """Re-run a dead job as a new job (admin)."""
    show(call_api("POST", url, f"/dlq/{entry_id}/retry", admin=True))


@dlq_app.command("discard")
def discard_dlq(entry_id: str, url: UrlOption = DEFAULT_URL) -> None:
    """Delete a dead-letter entry (admin)."""
    call_api("DELETE", url, f"/dlq/{entry_id}", admin=True)
    typer.echo(f"discarded {entry_id}")


ReasonOption = Annotated[str | None, typer.Option(help="Only entries dead for this reason")]
RouteOption = Annotated[str | None, typer.Option(help="Only entries of this route")]


def _filters(reason: str | None, route: str | None) -> dict[str, str]:
    filters = {name: value for name, value in (("reason", reason), ("route", route)) if value}
    if not filters:
        typer.echo("smartqueue: give --reason, --route or both", err=True)
        raise typer.Exit(code=2)
    return filters


@dlq_app.command("retry-all")
def retry_all_dlq(
    url: UrlOption = DEFAULT_URL, reason: ReasonOption = None, route: RouteOption = None
) -> None:
    """Re-run every dead job with this reason and/or route, each exactly once (admin)."""
    show(call_api("POST", url, "/dlq/retry", admin=True, **_filters(reason, route)))


@dlq_app.command("discard-all")
def discard_all_dlq(
    url: UrlOption = DEFAULT_URL, reason: ReasonOption = None, route: RouteOption = None
) -> None:
    """Delete every dead-letter entry with this reason and/or route (admin)."""
    show(call_api("DELETE", url, "/dlq", admin=True, **_filters(reason, route)))


def _signal(health: dict[str, Any] | None, name: str) -> object:
    signal = (health or {}).get("signals", {}).get(name) or {}
    return signal.get("value")


def gpu_row(gpu: dict[str, Any]) -> list[object]:
    """One GPU of GET /gpus as a table row."""
    health, breaker = gpu.get("health"), gpu["breaker"]
    return [gpu["name"], (health or {}).get("state", "unprobed"), breaker["state"],
            f"{gpu['slots_in_use']}/{gpu['slots']}", (health or {}).get("load_score"),
            _signal(health, "running"), _signal(health, "waiting"),
            _signal(health, "kv_pressure"), (health or {}).get("age_s"),
            ",".join(gpu["routes"]), breaker.get("reason")]  # fmt: skip


GPU_COLUMNS = ("GPU", "STATE", "BREAKER", "SLOTS", "SCORE", "RUNNING", "WAITING", "KV", "AGE_S",
               "ROUTES", "REASON")  # fmt: skip


def gpus(url: UrlOption = DEFAULT_URL) -> None:
    """The fleet as a table: probe state, breaker, slots in use, load score and signals."""
    fleet = call_api("GET", url, "/gpus")["gpus"]
    typer.echo(render_table(GPU_COLUMNS, [gpu_row(gpu) for gpu in fleet]))


def drain_table(state: dict[str, Any]) -> str:
    """A replica's drain status as a table."""
    columns = ("REPLICA", "DRAINING", "RUNNING", "EMPTY")
    row = [state["replica"], state["draining"], state["running"], state["empty"]]
    return render_table(columns, [row])


def drain(
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    undrain: Annotated[bool, typer.Option("--undrain", help="Take jobs again")] = False,
    wait_s: Annotated[
        float, typer.Option(min=0, help="Wait up to this long until no job runs (0: don't)")
    ] = 0.0,
) -> None:
    """Stop (or with --undrain resume) taking jobs on the replica at --url (admin)."""
    path = "/admin/undrain" if undrain else "/admin/drain"
    state = call_api("POST", url, path, admin=True, token=token)
    deadline = time.monotonic() + wait_s
    while not undrain and not state["empty"] and time.monotonic() < deadline:
        time.sleep(0.2)
        state = call_api("GET", url, "/admin/drain", admin=True, token=token)
    typer.echo(drain_table(state))
    if wait_s and not undrain and not state["empty"]:
        typer.echo(f"smartqueue: {state['running']} jobs still running", err=True)
        raise typer.Exit(code=1)


def register(app: typer.Typer) -> None:
    """Add the operator commands to the `smartqueue` command."""
    app.command("status")(status)
    app.command("gpus")(gpus)
    app.command("drain")(drain)
    app.add_typer(jobs_app, name="jobs")
    app.add_typer(dlq_app, name="dlq")
