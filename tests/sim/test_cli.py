"""`smartqueue-sim gpu` and `fleet` refuse bad input before binding anything; the
`smartqueue sim` and `sim-fleet` aliases run them, or say in one line that they are missing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from smartqueue.cli import app as service_app
from smartqueue_sim.cli import app
from smartqueue_sim.listener import BindError, bind_listeners, loopback_addresses

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["gpu", "--host", "192.0.2.1"], "non-loopback"),
        (["gpu", "--profile", "warp-drive"], "unknown latency profile"),
        (["gpu", "--fault", "meteor"], "meteor"),
        (["gpu", "--slots", "0"], "slots"),
        (["fleet", "--fleet", str(REPO / "deploy" / "fleet.yaml")], "resolve"),
        (["fleet", "--fleet", "/nonexistent/fleet.yaml"], "cannot read"),
        (["fleet", "--fleet", str(REPO / "deploy" / "fleet.local.yaml"),
          "--profile", "nosuchgpu=default"], "nosuchgpu"),
    ],
)  # fmt: skip
def test_sim_commands_reject_bad_input_with_a_clear_message(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert message in result.output


@pytest.mark.parametrize(
    ("alias", "args", "message"),
    [
        ("sim", ["--host", "192.0.2.1"], "non-loopback"),
        ("sim-fleet", ["--fleet", "/nonexistent/fleet.yaml"], "cannot read"),
        ("sim", ["--help"], "smartqueue-sim gpu"),
        ("sim-fleet", ["--help"], "smartqueue-sim fleet"),
    ],
)
def test_service_sim_aliases_pass_every_argument_to_the_simulator(
    alias: str, args: list[str], message: str
) -> None:
    result = CliRunner().invoke(service_app, [alias, *args])
    assert result.exit_code == (0 if args == ["--help"] else 2)
    assert message in result.output


@pytest.mark.parametrize("alias", ["sim", "sim-fleet"])
def test_service_sim_alias_without_the_simulator_fails_in_one_line(
    alias: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [name for name in sys.modules if name.startswith("smartqueue_sim")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "smartqueue_sim", None)  # import raises ModuleNotFoundError
    result = CliRunner().invoke(service_app, [alias, "--port", "0"])
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        "error: the GPU simulator (smartqueue_sim) is not installed here"
    ]


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
