"""`--api-key` / a fleet GPU's `api_key_env`: every engine path wants the bearer key, the
sidecar and control port does not."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest
import yaml
from typer.testing import CliRunner

from smartqueue.config import GpuConfig
from smartqueue_sim.auth import is_authorized
from smartqueue_sim.cli import app
from smartqueue_sim.fleet import SimFleetError, api_key_of
from tests.sim.conftest import PROCESS_API_KEY
from tests.support.ports import free_port
from tests.support.sim import SimApps, SimHandle, build_sim_apps

KEY = "s3cret-key"
MESSAGES: list[openai.types.chat.ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
CHAT = {"model": "sim-model", "messages": MESSAGES, "max_tokens": 2}
ENGINE_PATHS = [
    ("llamacpp", "POST", "/v1/chat/completions"),
    ("llamacpp", "POST", "/v1/completions"),
    ("llamacpp", "GET", "/v1/models"),
    ("llamacpp", "GET", "/health"),
    ("llamacpp", "GET", "/metrics"),
    ("llamacpp", "GET", "/slots"),
    ("vllm", "GET", "/metrics"),
    ("ollama", "GET", "/api/ps"),
]
BODIES = {"/v1/chat/completions": CHAT, "/v1/completions": {"prompt": "hi", "max_tokens": 2}}


@pytest.fixture
def keyed_apps() -> dict[str, SimApps]:
    """One in-process sim per engine, each wanting KEY."""
    engines = ("llamacpp", "vllm", "ollama")
    return {engine: build_sim_apps(engine=engine, api_key=KEY) for engine in engines}


async def _request(
    apps: SimApps, method: str, path: str, headers: dict[str, str]
) -> httpx.Response:
    async with apps.engine_client(headers=headers) as client:
        return await client.request(method, path, json=BODIES.get(path))


@pytest.mark.parametrize(("engine", "method", "path"), ENGINE_PATHS)
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {KEY}"}],
    ids=["none", "wrong-key", "not-bearer"],
)
async def test_engine_path_without_the_key_is_401_in_openai_shape(
    keyed_apps: dict[str, SimApps], engine: str, method: str, path: str, headers: dict[str, str]
) -> None:
    response = await _request(keyed_apps[engine], method, path, headers)
    error = response.json()["error"]
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert (error["type"], error["code"]) == ("authentication_error", 401)
    assert error["message"]
    assert keyed_apps[engine].sim.counters.stats().requests_total == 0


@pytest.mark.parametrize(("engine", "method", "path"), ENGINE_PATHS)
async def test_engine_path_with_the_key_answers(
    keyed_apps: dict[str, SimApps], engine: str, method: str, path: str
) -> None:
    response = await _request(keyed_apps[engine], method, path, {"Authorization": f"Bearer {KEY}"})
    assert response.status_code == 200


@pytest.mark.parametrize("path", ["/health", "/sim/faults", "/sim/stats", "/sim/settings"])
async def test_sidecar_and_control_paths_stay_open_with_a_key(path: str) -> None:
    async with build_sim_apps(api_key=KEY).sidecar_client() as sidecar:
        response = await sidecar.get(path)
    assert response.status_code == 200


async def test_settings_show_that_a_key_is_set_but_not_the_key() -> None:
    async with build_sim_apps(api_key=KEY).sidecar_client() as sidecar:
        settings = (await sidecar.get("/sim/settings")).json()
    assert settings["api_key"] == "**********"


async def test_sim_without_a_key_answers_without_authorization() -> None:
    async with build_sim_apps().engine_client() as gpu:
        assert (await gpu.get("/v1/models")).status_code == 200


@pytest.mark.parametrize(
    ("authorization", "authorized"),
    [(f"Bearer {KEY}", True), (f"bearer {KEY}", True), (f"Bearer  {KEY} ", True),
     (f"Bearer {KEY}x", False), ("Bearer", False), (f"Basic {KEY}", False), (KEY, False),
     (None, False)],
)  # fmt: skip
def test_is_authorized_wants_the_bearer_scheme_and_the_exact_key(
    authorization: str | None, authorized: bool
) -> None:
    assert is_authorized(authorization, api_key=KEY) is authorized


def _gpu(api_key_env: str | None) -> GpuConfig:
    return GpuConfig(name="g", url="http://127.0.0.1:1", sidecar_url="http://127.0.0.1:2",
                     engine="vllm", model="m", slots=1, vram_total_mb=1,
                     api_key_env=api_key_env)  # fmt: skip


def test_fleet_gpu_key_comes_from_its_api_key_env_variable() -> None:
    assert api_key_of(_gpu("GPU_KEY"), {"GPU_KEY": KEY}) == KEY
    assert api_key_of(_gpu(None), {"GPU_KEY": KEY}) is None


@pytest.mark.parametrize("environ", [{}, {"GPU_KEY": ""}])
def test_fleet_gpu_whose_api_key_env_is_unset_is_refused(environ: dict[str, str]) -> None:
    with pytest.raises(SimFleetError, match="g: api_key_env GPU_KEY is not set"):
        api_key_of(_gpu("GPU_KEY"), environ)


def _keyed_fleet(directory: Path) -> Path:
    key_envs = {"keyed": {"api_key_env": "SQ_TEST_GPU_KEY"}, "open": {}}
    gpus = [{"name": name, "url": f"http://127.0.0.1:{free_port()}",
             "sidecar_url": f"http://127.0.0.1:{free_port()}", "engine": "llamacpp",
             "model": f"model-{name}", "slots": 1, "vram_total_mb": 24576, **key_env}
            for name, key_env in key_envs.items()]  # fmt: skip
    path = directory / "fleet.yaml"
    path.write_text(yaml.safe_dump({"gpus": gpus, "routes": {"default": ["keyed", "open"]}}))
    return path


def test_fleet_command_with_an_unset_key_variable_fails_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SQ_TEST_GPU_KEY", raising=False)
    result = CliRunner().invoke(app, ["fleet", "--fleet", str(_keyed_fleet(tmp_path))])
    assert result.exit_code == 2
    assert result.output.splitlines() == [
        "error: keyed: api_key_env SQ_TEST_GPU_KEY is not set or empty"
    ]


def test_gpu_command_with_an_empty_key_fails_in_one_line() -> None:
    result = CliRunner().invoke(app, ["gpu", "--api-key", ""])
    assert result.exit_code == 2
    assert result.output.startswith("error: api_key: ")


@pytest.mark.slow
def test_sim_process_with_api_key_serves_the_openai_client_that_sends_it(
    sim_processes: dict[str, SimHandle],
) -> None:
    gpu = sim_processes["keyed"]  # started with --api-key=PROCESS_API_KEY
    with openai.OpenAI(base_url=f"{gpu.url}/v1", api_key=PROCESS_API_KEY, max_retries=0) as sdk:
        answer = sdk.chat.completions.create(model="m", messages=MESSAGES, max_tokens=2)
    with (
        openai.OpenAI(base_url=f"{gpu.url}/v1", api_key="wrong", max_retries=0) as sdk,
        pytest.raises(openai.AuthenticationError),
    ):
        sdk.models.list()
    assert answer.choices[0].message.content
    assert httpx.get(f"{gpu.sidecar_url}/health").status_code == 200
