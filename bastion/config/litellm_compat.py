"""Read a LiteLLM proxy config (``model_list`` + ``router_settings``) into Bastion's own shape.

A LiteLLM user points Bastion at their existing file and gets the same aliases, deployments,
weights, rpm limits, retries, fallbacks and ``general_settings.master_key`` (an admin credential).
Keys that have no meaning here are ignored, and ``ignored_keys`` lists them so that
``check-config`` and ``serve`` can say so; a model string naming a provider Bastion cannot reach
is an error naming the entry.
"""

from __future__ import annotations

from typing import Any

from bastion.config.errors import ConfigError

# LiteLLM provider prefix -> (Bastion provider, default api_base or None).
_OPENAI_COMPATIBLE_PREFIXES: dict[str, str | None] = {
    "openai": None,
    "custom_openai": None,
    "text-completion-openai": None,
    "hosted_vllm": None,
    "vllm": None,
    "llamacpp": None,
    "lm_studio": None,
    "openai_like": None,
    "groq": "https://api.groq.com/openai/v1",
    "together_ai": "https://api.together.xyz/v1",
    "deepseek": "https://api.deepseek.com/v1",
    "mistral": "https://api.mistral.ai/v1",
    "fireworks_ai": "https://api.fireworks.ai/inference/v1",
    "openrouter": "https://openrouter.ai/api/v1",
    "perplexity": "https://api.perplexity.ai",
    "ollama": "http://localhost:11434/v1",
    "ollama_chat": "http://localhost:11434/v1",
}

_ROUTING_STRATEGIES = {
    "simple-shuffle": "weighted",
    "least-busy": "least_busy",
    # Bastion has no usage- or latency-based strategy yet; weighted random is the closest honest match.
    "usage-based-routing": "weighted",
    "usage-based-routing-v2": "weighted",
    "latency-based-routing": "weighted",
    "cost-based-routing": "weighted",
}


# What ``convert`` reads, section by section; anything else in a LiteLLM file is reported as ignored.
_HONOURED_PARAMS = {
    "model", "api_base", "base_url", "api_key", "rpm", "tpm", "weight", "max_parallel_requests", "timeout",
    "stream_timeout",
}  # fmt: skip
#: ``cache``: Bastion's own per-model cache settings (``models[].cache``, docs/CACHES.md).
_HONOURED_MODEL_INFO = {"id", "mode", "cache"}
_HONOURED_ROUTER = {"routing_strategy", "num_retries", "timeout", "fallbacks", "cooldown_time", "allowed_fails"}
_HONOURED_LITELLM = {"num_retries", "request_timeout", "fallbacks"}
_HONOURED_GENERAL = {"master_key"}
_SECTIONS = {"model_list", "router_settings", "litellm_settings", "general_settings"}


def is_litellm_config(raw: dict[str, Any]) -> bool:
    return "model_list" in raw


def _split_model(model: str, where: str) -> tuple[str, str, str | None]:
    """Map a LiteLLM model string to (provider, upstream model, default api_base)."""
    prefix, sep, rest = model.partition("/")
    if not sep:
        if model.startswith("claude"):
            return "anthropic", model, None
        return "openai", model, None
    if prefix == "anthropic":
        return "anthropic", rest, None
    if prefix in ("local", "bastion"):
        return "local", rest, None
    if prefix in _OPENAI_COMPATIBLE_PREFIXES:
        base = _OPENAI_COMPATIBLE_PREFIXES[prefix]
        return "openai", rest, base
    raise ConfigError(
        f"{where}: provider {prefix!r} is not supported; use an OpenAI-compatible api_base "
        "with 'openai/<model>' or 'anthropic/<model>'"
    )


def _ollama_base(api_base: str | None) -> str | None:
    # LiteLLM's ollama api_base is the server root; its OpenAI-compatible API lives under /v1.
    if api_base and not api_base.rstrip("/").endswith("/v1"):
        return api_base.rstrip("/") + "/v1"
    return api_base


def convert(raw: dict[str, Any]) -> dict[str, Any]:
    """Return a Bastion config dict equivalent to a LiteLLM config dict."""
    model_list = raw.get("model_list")
    if not isinstance(model_list, list):
        raise ConfigError("model_list: must be a list of {model_name, litellm_params} entries")

    models: dict[str, dict[str, Any]] = {}
    for index, entry in enumerate(model_list):
        where = f"model_list[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("model_name"), str):
            raise ConfigError(f"{where}.model_name: required string")
        params = entry.get("litellm_params")
        if not isinstance(params, dict) or not isinstance(params.get("model"), str):
            raise ConfigError(f"{where}.litellm_params.model: required string")
        provider, upstream_model, default_base = _split_model(params["model"], f"{where}.litellm_params.model")
        api_base = params.get("api_base") or params.get("base_url") or default_base
        if params["model"].startswith(("ollama/", "ollama_chat/")):
            api_base = _ollama_base(api_base)
        deployment: dict[str, Any] = {"provider": provider, "model": upstream_model}
        if api_base:
            deployment["api_base"] = api_base
        if params.get("api_key") is not None:
            deployment["api_key"] = str(params["api_key"])
        for key in ("rpm", "tpm", "weight"):
            if params.get(key) is not None:
                deployment[key] = params[key]
        if params.get("max_parallel_requests") is not None:
            deployment["max_concurrency"] = params["max_parallel_requests"]
        timeout = params.get("timeout") or params.get("stream_timeout")
        if isinstance(timeout, int | float):
            deployment["timeouts"] = {"read_s": float(timeout)}
        model_info = entry.get("model_info") or {}
        if isinstance(model_info, dict) and model_info.get("id"):
            deployment["id"] = str(model_info["id"])
        kind = "embedding" if isinstance(model_info, dict) and model_info.get("mode") == "embedding" else "chat"
        name = entry["model_name"]
        model = models.setdefault(name, {"name": name, "deployments": [], "kind": kind})
        model["deployments"].append(deployment)
        if isinstance(model_info, dict) and model_info.get("cache") is not None:
            model["cache"] = model_info["cache"]

    router: dict[str, Any] = {}
    router_settings = raw.get("router_settings") or {}
    litellm_settings = raw.get("litellm_settings") or {}
    strategy = router_settings.get("routing_strategy")
    if strategy is not None:
        if strategy not in _ROUTING_STRATEGIES:
            raise ConfigError(f"router_settings.routing_strategy: unknown strategy {strategy!r}")
        router["strategy"] = _ROUTING_STRATEGIES[strategy]
    retries = router_settings.get("num_retries", litellm_settings.get("num_retries"))
    if retries is not None:
        router["retries"] = retries
    timeout = router_settings.get("timeout", litellm_settings.get("request_timeout"))
    if isinstance(timeout, int | float):
        router["timeouts"] = {"read_s": float(timeout)}
    fallbacks = router_settings.get("fallbacks", litellm_settings.get("fallbacks"))
    if fallbacks:
        merged: dict[str, list[str]] = {}
        for item in fallbacks if isinstance(fallbacks, list) else [fallbacks]:
            if not isinstance(item, dict):
                raise ConfigError("router_settings.fallbacks: entries must be {model: [fallback, ...]}")
            for source, targets in item.items():
                merged.setdefault(str(source), []).extend(
                    [str(t) for t in (targets if isinstance(targets, list) else [targets])]
                )
        router["fallbacks"] = merged
    cooldown = router_settings.get("cooldown_time")
    allowed_fails = router_settings.get("allowed_fails")
    if cooldown is not None or allowed_fails is not None:
        breaker: dict[str, Any] = {}
        if cooldown is not None:
            breaker["cooldown_s"] = cooldown
        if allowed_fails is not None:
            breaker["failure_threshold"] = int(allowed_fails) + 1
        router["breaker"] = breaker

    converted: dict[str, Any] = {"models": list(models.values())}
    if router:
        converted["router"] = router
    general = raw.get("general_settings") or {}
    if isinstance(general, dict) and general.get("master_key") is not None:
        converted["auth"] = {"master_key": str(general["master_key"])}
    return converted


def _unhonoured(section: Any, honoured: set[str], where: str) -> list[str]:
    if not isinstance(section, dict):
        return []
    return [f"{where}.{key}" for key in section if key not in honoured]


def ignored_keys(raw: dict[str, Any], native: frozenset[str] = frozenset()) -> list[str]:
    """Every key of a LiteLLM config that Bastion reads but does not act on (``native`` names the
    top-level keys that are Bastion's own settings), in file order."""
    ignored = [key for key in raw if key not in _SECTIONS and key not in native]
    for index, entry in enumerate(raw.get("model_list") or []):
        if not isinstance(entry, dict):
            continue
        where = f"model_list[{index}]"
        ignored += [f"{where}.{key}" for key in entry if key not in ("model_name", "litellm_params", "model_info")]
        ignored += _unhonoured(entry.get("litellm_params"), _HONOURED_PARAMS, f"{where}.litellm_params")
        ignored += _unhonoured(entry.get("model_info"), _HONOURED_MODEL_INFO, f"{where}.model_info")
    ignored += _unhonoured(raw.get("router_settings"), _HONOURED_ROUTER, "router_settings")
    ignored += _unhonoured(raw.get("litellm_settings"), _HONOURED_LITELLM, "litellm_settings")
    ignored += _unhonoured(raw.get("general_settings"), _HONOURED_GENERAL, "general_settings")
    return ignored
