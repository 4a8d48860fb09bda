"""Price table lookups, the cost formula, route pricing (deployment, alias, local, unknown), the
cost stage and the pre-flight estimates."""

from __future__ import annotations

from typing import Any

import pytest

from bastion.config.settings import PriceSettings, Settings
from bastion.gateway.stages.cost import CostStage
from bastion.providers.base import Usage
from bastion.routing.build import build_router
from bastion.spend.estimate import completion_tokens, prompt_tokens
from bastion.spend.metrics import UNPRICED
from bastion.spend.pricing import FREE, Price, PriceTable, load_default_prices, to_micros
from bastion.spend.routes import RoutePricing
from tests.limits.helpers import context


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return PriceTable.from_settings({})


def test_the_shipped_table_covers_the_common_models(table: PriceTable) -> None:
    for name in (
        "gpt-4o",
        "gpt-4o-mini",
        "gpt-4.1",
        "gpt-4.1-mini",
        "gpt-4.1-nano",
        "o1",
        "o3",
        "o3-mini",
        "o4-mini",
        "gpt-3.5-turbo",
        "text-embedding-3-small",
        "text-embedding-3-large",
        "claude-opus-4",
        "claude-sonnet-4",
        "claude-3-7-sonnet",
        "claude-3-5-sonnet",
        "claude-3-5-haiku",
        "claude-3-opus",
        "claude-3-haiku",
    ):
        assert name in table, name
    for name, price in load_default_prices().items():
        assert price.input_per_mtok > 0, name
        if not name.startswith("text-embedding"):
            assert price.output_per_mtok >= price.input_per_mtok, name
        if price.cached_input_per_mtok is not None:
            assert price.cached_input_per_mtok < price.input_per_mtok, name


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),  # an older snapshot with prices of its own
        ("GPT-4o-Mini", "gpt-4o-mini"),
        ("openai/gpt-4.1-mini", "gpt-4.1-mini"),
        ("gpt-3.5-turbo-0125", "gpt-3.5-turbo"),
        ("o3-mini-2025-01-31", "o3-mini"),
        ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
        ("claude-3-5-sonnet-latest", "claude-3-5-sonnet"),
        ("claude-3-5-sonnet@20240620", "claude-3-5-sonnet"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("anthropic/claude-3-haiku-20240307", "claude-3-haiku"),
        ("gpt-4-turbo-preview", "gpt-4-turbo"),
    ],
)
def test_versioned_names_match_their_family(table: PriceTable, name: str, family: str) -> None:
    price = table.lookup(name)
    assert price is not None and price.name == family


@pytest.mark.parametrize("name", ["gpt-4.5-preview", "gpt-4oo", "llama-3-70b", "my-model", ""])
def test_unknown_names_have_no_price(table: PriceTable, name: str) -> None:
    # "gpt-4" must not price "gpt-4.5" nor "gpt-4o" must price "gpt-4oo": only "-" boundaries match.
    assert table.lookup(name) is None


def test_cost_formula_prices_cached_input_apart() -> None:
    price = Price(input_per_mtok=2.5, output_per_mtok=10.0, cached_input_per_mtok=1.25)
    # (1000 - 400) x 2.5 + 400 x 1.25 + 200 x 10, per million.
    assert price.cost_usd(1000, 200, 400) == pytest.approx((600 * 2.5 + 400 * 1.25 + 200 * 10) / 1e6)
    # Without a cached price, a cache read costs a tenth of the input price.
    plain = Price(input_per_mtok=2.5, output_per_mtok=10.0)
    assert plain.cost_usd(1000, 200, 400) == pytest.approx((600 * 2.5 + 400 * 0.25 + 200 * 10) / 1e6)
    # More cached than prompt tokens (a provider quirk) never makes a negative cost.
    assert price.cost_usd(10, 0, 50) == pytest.approx(10 * 1.25 / 1e6)
    assert to_micros(Price(output_per_mtok=10_000).cost_usd(0, 3)) == 30_000  # rounded, not 30,001


def test_cache_writes_cost_more_than_input_by_their_ttl() -> None:
    price = Price(input_per_mtok=3.0, output_per_mtok=15.0)
    # 10,000 prompt tokens: 2,000 read, 5,000 written (1,000 of them for an hour), 3,000 plain.
    assert price.cost_usd(10_000, 100, 2_000, 5_000, 1_000) == pytest.approx(
        (3_000 * 3.0 + 2_000 * 0.3 + 4_000 * 3.75 + 1_000 * 6.0 + 100 * 15.0) / 1e6
    )
    # Explicit prices win over the multipliers.
    priced = Price(input_per_mtok=3.0, cached_input_per_mtok=0.5, cache_write_per_mtok=4.0, cache_write_1h_per_mtok=7)
    assert priced.cost_usd(1_000, 0, 100, 300, 100) == pytest.approx((600 * 3 + 100 * 0.5 + 200 * 4 + 100 * 7) / 1e6)
    # Over-reported counts are clipped to the prompt, never a negative or doubled charge.
    assert price.cost_usd(100, 0, 60, 80, 500) == pytest.approx((60 * 0.3 + 40 * 6.0) / 1e6)
    # The conservative price of an alias takes the highest of each.
    both = priced.most_expensive(Price(input_per_mtok=1.0, cache_write_per_mtok=9.0))
    assert (both.cache_write_per_mtok, both.cache_write_1h_per_mtok, both.cached_input_per_mtok) == (9.0, 7, 0.5)


def test_the_worked_example_of_prompt_caching() -> None:
    """100 requests sharing a 10,000-token prefix, 500 unique tokens each, at $3/MTok input."""
    price = Price(input_per_mtok=3.0)
    uncached = sum(price.cost_usd(10_500, 0) for _ in range(100))
    first = price.cost_usd(10_500, 0, cache_write_tokens=10_000)
    rest = sum(price.cost_usd(10_500, 0, cached_tokens=10_000) for _ in range(99))
    assert round(uncached, 6) == 3.15
    assert round(first + rest, 6) == 0.4845


def test_configuration_overrides_and_extends_the_table() -> None:
    table = PriceTable.from_settings(
        {"gpt-4o": PriceSettings(input_per_mtok=1.0, output_per_mtok=2.0), "my-model": PriceSettings(input_per_mtok=3)}
    )
    assert table.lookup("gpt-4o-2024-08-06") == Price(1.0, 2.0, None, None, "gpt-4o")
    assert table.lookup("my-model-v2") is not None  # extends: and families work for new names too
    mini = table.lookup("gpt-4o-mini")
    assert mini is not None and mini.input_per_mtok == 0.15


def _settings(**extra: Any) -> Settings:
    data: dict[str, Any] = {
        "local": {"enabled": False},
        "models": [
            {"name": "fast", "deployments": [{"provider": "openai", "model": "gpt-4o-mini-2024-07-18", "id": "d1"}]},
            {
                "name": "mixed",
                "deployments": [
                    {"provider": "openai", "model": "gpt-4o-mini", "id": "d2"},
                    {"provider": "anthropic", "model": "claude-3-5-sonnet-20241022", "id": "d3"},
                ],
            },
            {"name": "house", "deployments": [{"provider": "openai", "model": "house-llm", "id": "d4"}]},
            {"name": "gpt-4o", "deployments": [{"provider": "local", "model": "smollm2", "id": "d5"}]},
        ],
    }
    data.update(extra)
    return Settings.model_validate(data)


def test_route_pricing_per_deployment_alias_local_and_unknown() -> None:
    settings = _settings()
    pricing = RoutePricing.from_settings(settings, build_router(settings))
    assert pricing.for_deployment("d1", None, None).price.name == "gpt-4o-mini"
    # An alias served by several deployments is estimated at each component's maximum.
    mixed = pricing.for_alias("mixed")
    assert (mixed.input_per_mtok, mixed.output_per_mtok) == (3.0, 15.0)
    # A local deployment costs nothing, even behind an alias that names a priced model.
    assert pricing.for_deployment("d5", "smollm2", "gpt-4o").price == FREE
    assert pricing.for_deployment("d5", "smollm2", "gpt-4o").known
    unknown = pricing.for_deployment("d4", "house-llm", "house")
    assert not unknown.known and unknown.price == FREE


def test_explicit_pricing_wins_and_can_price_local_models() -> None:
    settings = _settings(
        pricing={"house": {"input_per_mtok": 1.0, "output_per_mtok": 4.0}, "smollm2": {"input_per_mtok": 0.01}}
    )
    pricing = RoutePricing.from_settings(settings, build_router(settings))
    assert pricing.for_deployment("d4", "house-llm", "house").price.output_per_mtok == 4.0
    assert pricing.for_deployment("d5", "smollm2", "gpt-4o").price.input_per_mtok == 0.01


def _pricing(settings: Settings) -> RoutePricing:
    return RoutePricing.from_settings(settings, build_router(settings))


async def test_cost_stage_prices_usage_and_counts_unpriced_models() -> None:
    stage = CostStage(_pricing(_settings()))
    ctx = context("fast")
    ctx.trace.alias, ctx.trace.deployment, ctx.trace.upstream_model = "fast", "d1", "gpt-4o-mini-2024-07-18"
    ctx.usage = Usage(prompt_tokens=1000, completion_tokens=500, cached_tokens=200)
    await stage.on_complete(ctx)
    assert ctx.cost_usd == pytest.approx((800 * 0.15 + 200 * 0.075 + 500 * 0.6) / 1e6)

    before = UNPRICED.labels(model="house-llm")._value.get()
    unpriced = context("house")
    unpriced.trace.alias, unpriced.trace.deployment, unpriced.trace.upstream_model = "house", "d4", "house-llm"
    unpriced.usage = Usage(prompt_tokens=10, completion_tokens=10)
    await stage.on_complete(unpriced)
    assert unpriced.cost_usd == 0.0
    assert UNPRICED.labels(model="house-llm")._value.get() == before + 1


async def test_cost_stage_without_upstream_or_usage() -> None:
    stage = CostStage(_pricing(_settings()))
    rejected = context("fast")  # refused before routing: nothing to pay
    await stage.on_complete(rejected)
    assert rejected.cost_usd == 0.0
    failed = context("fast")  # routed, but the upstream failed before answering
    failed.trace.deployment, failed.trace.upstream_model = "d1", "gpt-4o-mini"
    await stage.on_complete(failed)
    assert failed.cost_usd == 0.0
    cut = context("fast")  # a stream cut off before usage arrived: priced from what was received
    cut.trace.deployment, cut.trace.upstream_model = "d1", "gpt-4o-mini"
    cut.output_text.extend(["Hello ", "there, ", "how are you today?"])
    await stage.on_complete(cut)
    assert cut.cost_usd > 0.0


def test_prompt_and_completion_estimates() -> None:
    body = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi " * 100}]}
    tokens = prompt_tokens(body)
    assert 100 <= tokens <= 250
    assert prompt_tokens({"input": ["one two three", "four"]}, "embeddings") >= 2
    price = Price(1.0, 2.0, max_output_tokens=8192)
    assert completion_tokens({"max_completion_tokens": 50, "max_tokens": 99}, price, 4096) == 50
    assert completion_tokens({"max_tokens": 99}, price, 4096) == 99
    assert completion_tokens({}, price, 4096) == 8192
    assert completion_tokens({}, Price(1.0, 2.0), 4096) == 4096
    assert completion_tokens({"max_tokens": True}, Price(1.0, 2.0), 4096) == 4096
    assert completion_tokens({"max_tokens": 99}, price, 4096, "embeddings") == 0
