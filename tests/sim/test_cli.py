"""The `sim` and `sim-fleet` commands refuse bad input before binding anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from smartqueue.cli import app
from smartqueue.sim.listener import BindError, bind_listeners, loopback_addresses

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sim", "--host", "192.0.2.1"], "non-loopback"),
        (["sim", "--profile", "warp-drive"], "unknown latency profile"),
        (["sim", "--fault", "meteor"], "meteor"),
        (["sim", "--slots", "0"], "slots"),
        (["sim-fleet", "--fleet", str(REPO / "deploy" / "fleet.yaml")], "resolve"),
        (["sim-fleet", "--fleet", "/nonexistent/fleet.yaml"], "cannot read"),
        (["sim-fleet", "--fleet", str(REPO / "deploy" / "fleet.local.yaml"),
          "--profile", "nosuchgpu=default"], "nosuchgpu"),
    ],
)  # fmt: skip
def test_sim_commands_reject_bad_input_with_a_clear_message(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.5"])
def test_loopback_addresses_accepts_loopback_hosts(host: str) -> None:
    assert loopback_addresses(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "::"])
def test_loopback_addresses_rejects_anything_else(host: str) -> None:
    with pytest.raises(BindError, match="non-loopback"):
        loopback_addresses(host)


def test_bind_listeners_port_taken_is_a_clear_error() -> None:
    taken = bind_listeners(["127.0.0.1"], 0)
    try:
        port = taken[0].getsockname()[1]
        with pytest.raises(BindError, match=f"port {port}"):
            bind_listeners(["127.0.0.1"], port)
    finally:
        taken[0].close()
