"""The x-ratelimit-* response headers, in OpenAI's names and formats.

``x-ratelimit-limit-requests`` / ``-remaining-requests`` / ``-reset-requests`` and the ``-tokens``
trio, for the most constraining scope (fewest remaining) of each dimension. Reset is a Go-style
duration ("1s", "6m0s", "250ms"): the time until the oldest entry in that scope's sliding window
leaves it, i.e. until ``remaining`` next grows.
"""

from __future__ import annotations

from bastion.limits.plan import RateReport


def format_duration(seconds: float) -> str:
    """Go-style duration as OpenAI sends it: "20ms", "1s", "1.5s", "6m0s", "1h2m3s"."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{max(1, round(seconds * 1000))}ms"
    if seconds < 60:
        text = f"{seconds:.3f}".rstrip("0").rstrip(".")
        return f"{text}s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s"


def rate_limit_headers(requests: RateReport | None, tokens: RateReport | None) -> dict[str, str]:
    headers: dict[str, str] = {}
    if requests is not None:
        headers["x-ratelimit-limit-requests"] = str(requests.limit)
        headers["x-ratelimit-remaining-requests"] = str(max(0, requests.remaining))
        headers["x-ratelimit-reset-requests"] = format_duration(requests.reset_s)
    if tokens is not None:
        headers["x-ratelimit-limit-tokens"] = str(tokens.limit)
        headers["x-ratelimit-remaining-tokens"] = str(max(0, tokens.remaining))
        headers["x-ratelimit-reset-tokens"] = format_duration(tokens.reset_s)
    return headers
