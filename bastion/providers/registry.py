"""Provider name -> implementation. Adding a provider is one module plus one line here."""

from __future__ import annotations

import importlib

from bastion.providers.base import Deployment, Provider

#: provider name -> "module:Class"; imported on first use so unused providers cost nothing.
PROVIDERS: dict[str, str] = {
    "openai": "bastion.providers.openai:OpenAIProvider",
    "anthropic": "bastion.providers.anthropic:AnthropicProvider",
    "local": "bastion.providers.local:LocalProvider",
}


def provider_class(name: str) -> type[Provider]:
    module_name, _, class_name = PROVIDERS[name].partition(":")
    return getattr(importlib.import_module(module_name), class_name)  # type: ignore[no-any-return]


def build_provider(deployment: Deployment) -> Provider:
    return provider_class(deployment.provider)(deployment)
