"""The `smartqueue` command line: serve, stack, nginx render, operator commands, and aliases of
the sibling programs (`sim`, `sim-fleet`, `sidecar`)."""

from __future__ import annotations

from collections.abc import Callable

import typer

from smartqueue.nginx import register as register_nginx
from smartqueue.ops import register as register_ops
from smartqueue.serve import serve_command
from smartqueue.stack import register as register_stack

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
app.command("serve")(serve_command)

SIMULATOR_PACKAGE = "smartqueue_sim"
# Every argument, --help included, goes to the sibling program's own command line.
PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}
SIM_ALIASES = {
    "sim": ("gpu", "Run one simulated GPU (alias of `smartqueue-sim gpu`)."),
    "sim-fleet": ("fleet", "Run a fleet file's simulated GPUs (alias of `smartqueue-sim fleet`)."),
}


@app.callback()
def root() -> None:
    """smartqueue: a GPU-aware inference queue and router for a self-hosted LLM fleet."""


def simulator_alias(subcommand: str) -> Callable[[typer.Context], None]:
    """A command running `smartqueue-sim <subcommand>`, imported only when it runs."""

    def run(ctx: typer.Context) -> None:
        try:
            from smartqueue_sim.cli import main as run_simulator
        except ModuleNotFoundError as error:
            if not (error.name or "").startswith(SIMULATOR_PACKAGE):
                raise
            typer.echo(
                f"error: the GPU simulator ({SIMULATOR_PACKAGE}) is not installed here", err=True
            )
            raise typer.Exit(code=2) from None
        run_simulator([subcommand, *ctx.args])

    return run


# Sub-command groups register themselves here; each lives beside the code it drives.
register_nginx(app)
register_ops(app)
register_stack(app)
for alias, (subcommand, summary) in SIM_ALIASES.items():
    app.command(alias, help=summary, context_settings=PASS_THROUGH, add_help_option=False)(
        simulator_alias(subcommand)
    )


@app.command(
    "sidecar",
    help="Serve this GPU host's metrics on :8090 (the smartqueue-sidecar program; --help lists "
    "its options).",
    add_help_option=False,
    context_settings=PASS_THROUGH,
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
