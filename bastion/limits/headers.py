"""The x-ratelimit-* response headers, in OpenAI's names and formats.

``x-ratelimit-limit-requests`` / ``-remaining-requests`` / ``-reset-requests`` and the ``-tokens``
trio, for the most constraining scope (fewest remaining) of each dimension. Reset is a Go-style
duration ("1s", "6m0s", "250ms"), rounded up to whole seconds from 1 s: the time until the oldest
entry in that scope's sliding window leaves it, i.e. until ``remaining`` next grows.
"""

from __future__ import annotations

import math

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


#: Whole-second resets, formatted once: a 60 s window has at most 61 of them.
_WHOLE_SECONDS = [format_duration(float(s)) for s in range(0, 62)]


def format_reset(seconds: float) -> str:
    """A reset for the headers: whole seconds rounded up from 1 s (cached), milliseconds below."""
    if seconds < 1:
        return format_duration(seconds)
    whole = math.ceil(seconds - 1e-9)
    return _WHOLE_SECONDS[whole] if whole < len(_WHOLE_SECONDS) else format_duration(whole)


def rate_limit_headers(requests: RateReport | None, tokens: RateReport | None) -> dict[str, str]:
    headers: dict[str, str] = {}
    if requests is not None:
        headers["x-ratelimit-limit-requests"] = str(requests.limit)
        headers["x-ratelimit-remaining-requests"] = str(max(0, requests.remaining))
        headers["x-ratelimit-reset-requests"] = format_reset(requests.reset_s)
    if tokens is not None:
        headers["x-ratelimit-limit-tokens"] = str(tokens.limit)
        headers["x-ratelimit-remaining-tokens"] = str(max(0, tokens.remaining))
        headers["x-ratelimit-reset-tokens"] = format_reset(tokens.reset_s)
    return headers
