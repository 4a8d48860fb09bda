"""Configuration: Bastion's YAML, ``BASTION_*`` overrides, errors that name the key, the LiteLLM
``model_list`` format (unit and end to end through a real gateway), and ``bastion check-config``."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from bastion.config.errors import ConfigError
from bastion.config.litellm_compat import convert
from bastion.config.loader import LOCAL_CHAT_ALIASES, load_settings
from bastion.config.secret_refs import resolve_secret
from bastion.providers.base import Deployment
from bastion.providers.openai import OpenAIProvider
from tests.gateway.helpers import USER_MESSAGES
from tests.support.fake_upstream import FakeUpstream, answer_text
from tests.support.gateway import BASTION_BIN, GatewayProcess, write_config

NO_LOCAL = {"local": {"enabled": False}}


def _write(tmp_path: Path, data: dict[str, Any], name: str = "bastion.yaml") -> Path:
    return write_config(tmp_path / name, data)


def _load(tmp_path: Path, data: dict[str, Any], environ: dict[str, str] | None = None) -> Any:
    return load_settings(_write(tmp_path, data), environ=environ or {})


def _model(name: str, **deployment: Any) -> dict[str, Any]:
    return {"name": name, "deployments": [{"provider": "openai", "model": name, **deployment}]}


# -- Bastion's own YAML and environment overrides -------------------------------------------------------


def test_yaml_values_are_loaded(tmp_path: Path) -> None:
    settings = _load(
        tmp_path,
        {
            "server": {"port": 9001, "max_body_bytes": 4096},
            "models": [_model("gpt", api_base="http://up/v1", weight=3, rpm=60)],
            "router": {"retries": 4, "strategy": "least_busy", "breaker": {"failure_threshold": 2}},
            **NO_LOCAL,
        },
    )
    assert settings.server.port == 9001 and settings.server.max_body_bytes == 4096
    deployment = settings.models[0].deployments[0]
    assert (deployment.api_base, deployment.weight, deployment.rpm) == ("http://up/v1", 3, 60)
    assert settings.router.retries == 4 and settings.router.strategy == "least_busy"
    assert settings.router.breaker.failure_threshold == 2
    assert settings.router.breaker.cooldown_s == 30.0, "unset keys keep their defaults"


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    environ = {
        "BASTION_SERVER__PORT": "9100",
        "BASTION_ROUTER__RETRIES": "5",
        "BASTION_ROUTER__BREAKER__COOLDOWN_S": "2.5",
        "BASTION_LOGGING__LEVEL": "debug",
        "BASTION_LOCAL__ENABLED": "false",
        "BASTION_CONFIG": "ignored-here",  # steers loading; not a setting
    }
    settings = _load(tmp_path, {"server": {"port": 9001, "host": "0.0.0.0"}}, environ)
    assert settings.server.port == 9100
    assert settings.server.host == "0.0.0.0", "a sibling key from the file survives"
    assert settings.router.retries == 5 and settings.router.breaker.cooldown_s == 2.5
    assert settings.logging.level == "debug"
    assert settings.local.enabled is False and settings.models == []


def test_config_path_from_environment(tmp_path: Path) -> None:
    path = _write(tmp_path, {"server": {"port": 9300}, **NO_LOCAL})
    assert load_settings(environ={"BASTION_CONFIG": str(path)}).server.port == 9300


@pytest.mark.parametrize(
    ("data", "environ", "named"),
    [
        ({"servr": {"port": 1}}, {}, "servr"),
        ({"server": {"prot": 1}}, {}, "server.prot"),
        ({"server": {"port": "eighty"}}, {}, "server.port"),
        ({"server": {"port": 70000}}, {}, "server.port"),
        ({"router": {"retries": -1}}, {}, "router.retries"),
        ({"models": [{"name": "x", "deployments": [{"provider": "bogus", "model": "x"}]}]}, {}, "provider"),
        ({"models": [{"name": "x", "deployments": []}]}, {}, "models.0.deployments"),
        ({"models": [_model("x")], "router": {"fallbacks": {"x": ["nope"]}}}, {}, "nope"),
        ({"models": [_model("x"), _model("x")]}, {}, "'x'"),
        ({}, {"BASTION_NOPE": "1"}, "nope"),
        ({}, {"BASTION_SERVER__PROT": "1"}, "server.prot"),
        ({}, {"BASTION_SERVER__PORT": "eighty"}, "server.port"),
    ],
)
def test_bad_configuration_names_the_key(
    tmp_path: Path, data: dict[str, Any], environ: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, data, environ)
    assert named in str(caught.value)
    assert "pydantic" not in str(caught.value) and "Traceback" not in str(caught.value)


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot be read"):
        load_settings(tmp_path / "missing.yaml", environ={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("server: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(bad, environ={})
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_settings(bad, environ={})


def test_local_models_and_their_aliases(tmp_path: Path) -> None:
    # With no models configured the embedded ones take the familiar default names...
    names = {n for m in _load(tmp_path, {}).models for n in (m.name, *m.aliases)}
    assert {"local/smollm2", "default", "gpt-4o-mini", "local/minilm", "text-embedding-3-small"} <= names
    # ...and keep them beside a configured model list (adding models must not remove them)...
    names = {n for m in _load(tmp_path, {"models": [_model("mine")]}).models for n in (m.name, *m.aliases)}
    assert names == {"mine", "local/smollm2", *LOCAL_CHAT_ALIASES, "local/minilm", "text-embedding-3-small"}
    # ...unless the configuration turns them off.
    off = {"models": [_model("mine")], "local": {"builtin_aliases": False}}
    names = {n for m in _load(tmp_path, off).models for n in (m.name, *m.aliases)}
    assert names == {"mine", "local/smollm2", "local/minilm"}


def test_a_configured_model_named_like_a_builtin_alias_is_an_error_naming_both(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, {"models": [_model("mine"), _model("gpt-4o-mini")]})
    message = str(caught.value)
    assert "'gpt-4o-mini'" in message and "models[1]" in message and "local/smollm2" in message
    assert "local.builtin_aliases: false" in message
    # The way out the message names works, and two configured models clash by index too.
    _load(tmp_path, {"models": [_model("gpt-4o-mini")], "local": {"builtin_aliases": False}})
    with pytest.raises(ConfigError, match=r"'twin' is defined twice: by models\[0\] and by models\[1\]"):
        _load(tmp_path, {"models": [_model("twin"), _model("twin")], **NO_LOCAL})


def test_embedded_models_load_at_start_only_where_the_config_needs_them(tmp_path: Path) -> None:
    def preload(data: dict[str, Any]) -> dict[str, bool]:
        models = _load(tmp_path, data).models
        return {m.name: m.deployments[0].preload for m in models if m.deployments[0].provider == "local"}

    # The no-config default serves them: loaded at start-up.
    assert preload({}) == {"local/smollm2": True, "local/minilm": True}
    # Beside a config's own (remote) models they stay available but load on first use...
    assert preload({"models": [_model("mine")]}) == {"local/smollm2": False, "local/minilm": False}
    # ...unless the config lists them, or says so.
    listed = {"name": "local/smollm2", "deployments": [{"provider": "local", "model": "smollm2"}]}
    lazy = {"name": "small", "deployments": [{"provider": "local", "model": "smollm2", "preload": False}]}
    assert preload({"models": [_model("mine"), listed, lazy]}) == {
        "local/smollm2": True,
        "small": False,
        "local/minilm": False,
    }


# -- LiteLLM's model_list format -------------------------------------------------------------------------

LITELLM: dict[str, Any] = {
    "model_list": [
        {
            "model_name": "gpt-4o",
            "litellm_params": {
                "model": "openai/gpt-4o",
                "api_base": "http://primary/v1",
                "api_key": "os.environ/PRIMARY_KEY",
                "rpm": 100,
                "weight": 3,
            },
            "model_info": {"id": "primary"},
        },
        {
            "model_name": "gpt-4o",
            "litellm_params": {"model": "azure-free/gpt-4o", "api_base": "http://x"},
        },
        {"model_name": "claude", "litellm_params": {"model": "anthropic/claude-3-5-haiku", "api_key": "sk-lit"}},
        {"model_name": "llama", "litellm_params": {"model": "groq/llama-3.1-8b", "timeout": 12}},
        {"model_name": "local-ollama", "litellm_params": {"model": "ollama/qwen", "api_base": "http://ol:11434"}},
        {
            "model_name": "embed",
            "litellm_params": {"model": "openai/text-embedding-3-small"},
            "model_info": {"mode": "embedding"},
        },
    ],
    "router_settings": {
        "routing_strategy": "least-busy",
        "num_retries": 4,
        "fallbacks": [{"gpt-4o": ["claude"]}, {"llama": "gpt-4o"}],
        "cooldown_time": 7,
        "allowed_fails": 2,
        "redis_host": "ignored",
    },
    "litellm_settings": {"drop_params": True},
    "general_settings": {"master_key": "sk-ignored"},
}


def _litellm_without_unsupported() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(yaml.safe_dump(LITELLM))
    del data["model_list"][1]  # azure-free/ is not a provider Bastion knows
    return data


def test_litellm_model_list_converts(tmp_path: Path) -> None:
    settings = _load(tmp_path, {**_litellm_without_unsupported(), **NO_LOCAL})
    models = {m.name: m for m in settings.models}
    assert set(models) == {"gpt-4o", "claude", "llama", "local-ollama", "embed"}
    gpt = models["gpt-4o"].deployments[0]
    assert (gpt.provider, gpt.model, gpt.api_base, gpt.id) == ("openai", "gpt-4o", "http://primary/v1", "primary")
    assert (gpt.api_key, gpt.rpm, gpt.weight) == ("os.environ/PRIMARY_KEY", 100, 3)
    claude = models["claude"].deployments[0]
    assert (claude.provider, claude.model, claude.api_key) == ("anthropic", "claude-3-5-haiku", "sk-lit")
    llama = models["llama"].deployments[0]
    assert llama.api_base == "https://api.groq.com/openai/v1" and llama.timeouts is not None
    assert llama.timeouts.read_s == 12
    assert models["local-ollama"].deployments[0].api_base == "http://ol:11434/v1"
    assert models["embed"].kind == "embedding"
    router = settings.router
    assert router.strategy == "least_busy" and router.retries == 4
    assert router.fallbacks == {"gpt-4o": ["claude"], "llama": ["gpt-4o"]}
    assert router.breaker.cooldown_s == 7 and router.breaker.failure_threshold == 3


def test_litellm_weighted_deployments_share_an_alias(tmp_path: Path) -> None:
    data = {
        "model_list": [
            {"model_name": "m", "litellm_params": {"model": "openai/a", "api_base": "http://a/v1", "weight": 1}},
            {"model_name": "m", "litellm_params": {"model": "openai/b", "api_base": "http://b/v1", "weight": 4}},
        ],
        **NO_LOCAL,
    }
    (model,) = _load(tmp_path, data).models
    assert [(d.model, d.weight) for d in model.deployments] == [("a", 1), ("b", 4)]


def test_litellm_unknown_provider_names_the_entry() -> None:
    with pytest.raises(ConfigError) as caught:
        convert(LITELLM)
    assert "model_list[1].litellm_params.model" in str(caught.value) and "azure-free" in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"model_list": {"not": "a list"}}, "model_list"),
        ({"model_list": [{"litellm_params": {"model": "openai/x"}}]}, "model_list[0].model_name"),
        ({"model_list": [{"model_name": "x", "litellm_params": {}}]}, "model_list[0].litellm_params.model"),
        (
            {
                "model_list": [{"model_name": "x", "litellm_params": {"model": "openai/x"}}],
                "router_settings": {"routing_strategy": "psychic"},
            },
            "routing_strategy",
        ),
    ],
)
def test_litellm_errors_name_the_key(raw: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        convert(raw)
    assert named in str(caught.value)


def test_os_environ_api_key_is_resolved(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PRIMARY_KEY", "sk-from-env")
    settings = _load(tmp_path, {**_litellm_without_unsupported(), **NO_LOCAL})
    model = next(m for m in settings.models if m.name == "gpt-4o")
    deployment_settings = model.deployments[0]
    deployment = Deployment(
        id="primary", alias="gpt-4o", settings=deployment_settings, timeouts=settings.router.timeouts
    )
    assert OpenAIProvider(deployment).headers["authorization"] == "Bearer sk-from-env"
    monkeypatch.delenv("PRIMARY_KEY")
    with pytest.raises(ConfigError, match="PRIMARY_KEY"):
        OpenAIProvider(deployment)
    assert resolve_secret("env:PATH", "x") and resolve_secret("literal", "x") == "literal"


@pytest.mark.integration
def test_litellm_config_serves_through_the_gateway(
    fake: FakeUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A LiteLLM proxy config, unchanged, runs a real gateway: aliases, keys, retries, fallbacks."""
    config = {
        "model_list": [
            {
                "model_name": "my-gpt",
                "litellm_params": {
                    "model": "openai/fake-ok",
                    "api_base": fake.openai_base,
                    "api_key": "os.environ/FAKE_UPSTREAM_KEY",
                },
            },
            {
                "model_name": "my-broken",
                "litellm_params": {"model": "openai/m-litellm-broken", "api_base": fake.openai_base},
            },
        ],
        "router_settings": {"num_retries": 1, "fallbacks": [{"my-broken": ["my-gpt"]}]},
        "general_settings": {"master_key": "sk-not-used-by-bastion"},
    }
    fake.default("m-litellm-broken", "500")
    env = {
        "FAKE_UPSTREAM_KEY": "sk-upstream-secret",
        # Settings a LiteLLM file has no words for come from the environment.
        "BASTION_LOCAL__ENABLED": "false",
        "BASTION_AUTH__ENABLED": "false",
        "BASTION_LIMITS__ENABLED": "false",
        "BASTION_BUDGETS__ENABLED": "false",
        "BASTION_DATA_DIR": str(tmp_path / "data"),
    }
    path = _write(tmp_path, config, "litellm.yaml")
    with GatewayProcess(path, tmp_path / "gateway.log", env=env) as gateway:
        try:
            client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="k", max_retries=0, timeout=30)
            assert {m.id for m in client.models.list()} == {"my-gpt", "my-broken"}
            completion = client.chat.completions.create(model="my-gpt", messages=USER_MESSAGES)
            assert completion.choices[0].message.content == answer_text("fake-ok")
            (request,) = fake.requests("fake-ok")
            assert request.headers.get("Authorization") == "Bearer sk-upstream-secret"
            assert request.body["model"] == "fake-ok", "the provider prefix is not sent upstream"
            completion = client.chat.completions.create(model="my-broken", messages=USER_MESSAGES)
            assert completion.choices[0].message.content == answer_text("fake-ok")
            assert fake.attempts("m-litellm-broken") == 2, "num_retries: 1 means two attempts"
            # SIGTERM is a graceful shut-down: the app's shutdown runs to its end. (uvicorn
            # re-raises the signal afterwards, so the exit status reports SIGTERM.)
            assert gateway.stop() in (0, -signal.SIGTERM)
            assert "Application shutdown complete" in gateway.log_tail()
        except BaseException:
            print(gateway.log_tail())
            raise


# -- the CLI ------------------------------------------------------------------------------------------------


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BASTION_BIN), *args], capture_output=True, text=True, timeout=60, cwd=cwd, env={"PATH": "/usr/bin:/bin"}
    )


@pytest.mark.integration
def test_check_config_reports_a_bad_key(tmp_path: Path) -> None:
    path = _write(tmp_path, {"server": {"prot": 8080}, "models": [_model("x", weight=-1)]})
    result = _cli("check-config", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert "server.prot" in result.stderr and "unknown key" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.integration
def test_check_config_reports_a_bad_litellm_entry(tmp_path: Path) -> None:
    path = _write(tmp_path, {"model_list": [{"model_name": "x", "litellm_params": {"model": "bedrock/x"}}]})
    result = _cli("check-config", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert "model_list[0].litellm_params.model" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.integration
def test_check_config_accepts_a_good_file(tmp_path: Path) -> None:
    path = _write(tmp_path, {"models": [_model("x", api_base="http://up/v1")], **NO_LOCAL})
    result = _cli("check-config", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "x -> openai:x" in result.stdout and "configuration is valid" in result.stdout


@pytest.mark.integration
def test_serve_refuses_a_bad_file_before_listening(tmp_path: Path) -> None:
    path = _write(tmp_path, {"servr": {}})
    result = _cli("serve", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 2 and "servr" in result.stderr
    assert "Traceback" not in result.stderr


def test_environment_strings_that_look_like_yaml_mappings_stay_strings() -> None:
    # "prefix:" is a one-key mapping to a YAML parser; as an environment value it is a string.
    settings = load_settings(
        environ={
            "BASTION_LIMITS__REDIS_PREFIX": "tenant-a:",
            "BASTION_ROUTER__FALLBACKS": "{}",
            "BASTION_SERVER__ACCESS_LOG": "true",
        }
    )
    assert settings.limits.redis_prefix == "tenant-a:"
    assert settings.router.fallbacks == {}
    assert settings.server.access_log is True
