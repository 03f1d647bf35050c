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


def main() -> None:
    """Entry point of the `smartqueue` console script."""
    app()
