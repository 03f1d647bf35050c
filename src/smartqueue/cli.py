"""The `smartqueue` command line: serve, sim, nginx render, and operator commands."""

from __future__ import annotations

import typer

from smartqueue.nginx import register as register_nginx
from smartqueue.ops import register as register_ops
from smartqueue.serve import serve_command
from smartqueue.sim.cli import register as register_sim
from smartqueue.stack import register as register_stack

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
app.command("serve")(serve_command)


@app.callback()
def root() -> None:
    """smartqueue: a GPU-aware inference queue and router for a self-hosted LLM fleet."""


# Sub-command groups register themselves here; each lives beside the code it drives.
register_sim(app)
register_nginx(app)
register_ops(app)
register_stack(app)


@app.command(
    "sidecar",
    help="Serve this GPU host's metrics on :8090 (the smartqueue-sidecar program; --help lists "
    "its options).",
    add_help_option=False,
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def sidecar_command(ctx: typer.Context) -> None:
    """Pass the arguments to smartqueue-sidecar, imported only now: it runs on GPU hosts."""
    try:
        from smartqueue_sidecar.cli import main as sidecar_main
    except ImportError as error:
        typer.echo(f"error: the GPU sidecar is not installed ({error})", err=True)
        raise typer.Exit(code=2) from None
    raise typer.Exit(code=sidecar_main(ctx.args, prog="smartqueue sidecar"))


def main() -> None:
    """Entry point of the `smartqueue` console script."""
    app()
