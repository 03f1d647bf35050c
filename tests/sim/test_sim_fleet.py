"""`smartqueue-sim fleet`: profile choice, and one process serving every GPU of a fleet file."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import yaml

from smartqueue.config import load_fleet
from smartqueue_sim.fleet import (
    SimFleetError,
    address_of,
    chosen_profile,
    load_profile_choices,
    parse_profile_choices,
    parse_profile_options,
)
from smartqueue_sim.latency import BUILTIN_PROFILES
from tests.support.ports import free_port
from tests.support.sim import running_sim_fleet

REPO = Path(__file__).resolve().parents[2]


def test_repository_profiles_give_each_local_gpu_its_own_profile() -> None:
    choices = load_profile_choices(REPO / "deploy" / "sim-profiles.yaml")
    fleet = load_fleet(REPO / "deploy" / "fleet.local.yaml")
    names = {gpu.name: chosen_profile(gpu.name, choices)[0] for gpu in fleet.gpus}
    assert names == {"amdpve": "moe-fast", "llmgpu": "dense-code", "ocu_llm": "light-fast"}


def test_profile_overrides_apply_on_top_of_the_builtin_profile() -> None:
    document = {"a": {"profile": "moe-fast", "overrides": {"tokens_per_s": 7}}}
    name, profile = chosen_profile("a", parse_profile_choices(document, source="t"))
    assert (name, profile.tokens_per_s) == ("moe-fast", 7)
    assert profile.ttft_base_ms == BUILTIN_PROFILES["moe-fast"].ttft_base_ms


def test_gpu_without_a_choice_gets_the_default_profile() -> None:
    assert chosen_profile("unnamed", {}) == ("default", BUILTIN_PROFILES["default"])


@pytest.mark.parametrize(
    "document",
    [{"a": "warp-drive"}, {"a": {"profile": "default", "overrides": {"tokens_per_s": -1}}},
     {"a": {"profile": "default", "colour": "red"}}, ["a"]],
)  # fmt: skip
def test_invalid_profile_choices_are_rejected(document: object) -> None:
    with pytest.raises(SimFleetError):
        parse_profile_choices(document, source="t")


def test_profile_options_need_gpu_equals_profile() -> None:
    assert parse_profile_options(["a=light-fast"])["a"].profile == "light-fast"
    with pytest.raises(SimFleetError):
        parse_profile_options(["light-fast"])


def test_address_of_reads_host_and_ports_from_the_fleet_urls() -> None:
    gpu = load_fleet(REPO / "deploy" / "fleet.local.yaml").gpus[0]
    address = address_of(gpu)
    assert (address.host, address.port, address.sidecar_port) == ("localhost", 18081, 18091)


def _write_fleet(directory: Path) -> Path:
    gpus = [
        ("big", "llamacpp", "moe-model", 4, 65536),
        ("code", "vllm", "code-model", 2, 24576),
        ("light", "ollama", "light-model", 2, 12227),
    ]
    key_envs = {"code": {"api_key_env": "SQ_TEST_CODE_KEY"}}
    document = {
        "gpus": [
            {"name": name, "url": f"http://127.0.0.1:{free_port()}",
             "sidecar_url": f"http://127.0.0.1:{free_port()}", "engine": engine,
             "model": model, "slots": slots, "vram_total_mb": vram, **key_envs.get(name, {})}
            for name, engine, model, slots, vram in gpus
        ],
        "routes": {"default": ["big", "code", "light"]},
    }  # fmt: skip
    (directory / "sim-profiles.yaml").write_text("big: moe-fast\ncode: dense-code\n")
    path = directory / "fleet.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.mark.slow
def test_sim_fleet_serves_every_gpu_of_the_fleet_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet_path = _write_fleet(tmp_path)
    fleet = load_fleet(fleet_path)
    monkeypatch.setenv("SQ_TEST_CODE_KEY", "code-key")  # `code` has api_key_env
    keyed = httpx.Client(headers={"Authorization": "Bearer code-key"})
    with keyed, running_sim_fleet(fleet_path, extra_args=["--profile=light=light-fast"]) as sims:
        models = {name: keyed.get(f"{sim.url}/v1/models").json() for name, sim in sims.items()}
        settings = {name: httpx.get(f"{sim.sidecar_url}/sim/settings").json()
                    for name, sim in sims.items()}  # fmt: skip
        engine_paths = [("big", "/slots"), ("code", "/metrics"), ("light", "/api/ps")]
        statuses = [keyed.get(f"{sims[name].url}{path}").status_code for name, path in engine_paths]
        keyless = {name: httpx.get(f"{sim.url}/v1/models").status_code
                   for name, sim in sims.items()}  # fmt: skip
        sims["code"].set_faults("error")
        faulted = keyed.post(f"{sims['code'].url}/v1/completions", json={"prompt": "x"})
        healthy = httpx.post(f"{sims['big'].url}/v1/completions", json={"prompt": "x"})
    assert keyless == {"big": 200, "code": 401, "light": 200}
    assert {name: body["data"][0]["id"] for name, body in models.items()} == {
        gpu.name: gpu.model for gpu in fleet.gpus
    }
    assert {name: (s["slots"], s["profile_name"]) for name, s in settings.items()} == {
        "big": (4, "moe-fast"), "code": (2, "dense-code"), "light": (2, "light-fast"),
    }  # fmt: skip
    assert [sim.url for sim in sims.values()] == [gpu.url for gpu in fleet.gpus]
    assert statuses == [200, 200, 200]
    assert (faulted.status_code, healthy.status_code) == (500, 200)
