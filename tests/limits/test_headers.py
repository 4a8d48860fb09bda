"""The x-ratelimit-* header formats (OpenAI's Go-style durations)."""

from __future__ import annotations

import pytest

from bastion.limits.headers import format_duration, format_reset, rate_limit_headers
from bastion.limits.plan import RateReport


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (-1, "0s"),
        (0.02, "20ms"),
        (0.0001, "1ms"),
        (1, "1s"),
        (1.5, "1.5s"),
        (59.25, "59.25s"),
        (60, "1m0s"),
        (360, "6m0s"),
        (90.4, "1m30s"),
        (3723, "1h2m3s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_resets_round_up_to_whole_seconds() -> None:
    assert format_reset(0.25) == "250ms"
    assert format_reset(1.0) == "1s"
    assert format_reset(1.01) == "2s"
    assert format_reset(59.5) == "1m0s"
    assert format_reset(60.0) == "1m0s"
    assert format_reset(125) == "2m5s"


def test_headers_for_each_dimension_present() -> None:
    both = rate_limit_headers(RateReport(100, 42, 12.2), RateReport(1000, -5, 0.5))
    assert both == {
        "x-ratelimit-limit-requests": "100",
        "x-ratelimit-remaining-requests": "42",
        "x-ratelimit-reset-requests": "13s",
        "x-ratelimit-limit-tokens": "1000",
        "x-ratelimit-remaining-tokens": "0",  # an answer may take a scope past its limit: never negative
        "x-ratelimit-reset-tokens": "500ms",
    }
    assert rate_limit_headers(None, None) == {}
    assert set(rate_limit_headers(RateReport(1, 0, 1), None)) == {
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-reset-requests",
    }
