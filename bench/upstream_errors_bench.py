"""Time to map one upstream error answer to the caller's error (parse, describe, scrub).

    .venv/bin/python bench/upstream_errors_bench.py [info|debug] 2>/dev/null

Only failing upstream calls pay this; successful ones never reach the mapping. At ``debug`` the
scrubbed body is also logged (stderr, hence the redirect). It prints numbers and never fails.
"""

from __future__ import annotations

import sys
import timeit

import orjson

from bastion.config.settings import LoggingSettings
from bastion.observability.logging import configure_logging
from bastion.providers.scrub import CredentialScrubber
from bastion.providers.upstream_errors import UpstreamErrors

KEY = "gwk-7Qp2Vx9LmA4kR8sT1zB6nW3c"
ROUNDS = 200


def main(level: str) -> None:
    configure_logging(LoggingSettings(level=level))
    errors = UpstreamErrors("upstream d1", CredentialScrubber([KEY, f"Bearer {KEY}"]))
    message = f"Incorrect API key provided: {KEY}. You can find your API key at https://platform.openai.com/account."
    bodies = {
        "401 JSON, 0.2 KB": (401, orjson.dumps({"error": {"message": message, "type": "invalid_request_error"}})),
        "500 JSON, 100 KB": (
            500,
            orjson.dumps({"error": {"message": "The server had an error processing your request. " * 2000}}),
        ),
        "502 HTML, 100 KB": (502, b"<html><body>" + b"<p>padding</p>" * 7000 + b"</body></html>"),
    }
    errors.for_status(401, {}, bodies["401 JSON, 0.2 KB"][1])  # the first call imports the guard's detector
    for name, (status, body) in bodies.items():
        seconds = timeit.timeit(lambda: errors.for_status(status, {}, body), number=ROUNDS) / ROUNDS  # noqa: B023
        print(f"{level:5} {name}: {seconds * 1e6:8.0f} µs per mapped error", file=sys.__stdout__)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "info")
