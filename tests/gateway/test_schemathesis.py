"""Schemathesis against the gateway's own OpenAPI document: every operation, every phase that needs
no hand-written scenario (the document's examples, boundary and negative "coverage" cases, then
random fuzzing), on a real ``bastion serve`` over SQLite in front of the fake upstream.

Each answer must be no 5xx and must match the document: a documented status, the documented
content type, the documented headers and a body matching the documented schema. The run happens
twice: auth on with a platform admin key (so it gets past the 401s into the admin API), and auth
off (anonymous calls). Examples per operation are bounded so both runs stay well under a minute.

The figures of a run (operations, cases, answers by status) are printed; ``-s`` shows them.
"""

from __future__ import annotations

import collections
import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events
from schemathesis.hooks import GLOBAL_HOOK_DISPATCHER

from bastion.openapi.operations import OPERATIONS
from tests.support.cluster import ClusterFactory, gateway_cluster  # noqa: F401
from tests.support.fake_upstream import FakeUpstream

#: Random cases per operation in the fuzzing phase; the coverage phase adds its own, bounded by the schema.
MAX_EXAMPLES = 5
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "unsupported_method",  # 405 with an Allow header for a method the path does not serve
    "ignored_auth",  # an operation that declares credentials refuses a call without them
)
COVERED_ELSEWHERE = (
    "createChatCompletion",
    "createChatCompletionUnversioned",
    "createEmbeddingUnversioned",
    "createMessage",
)
#: Operations that answer 401/403 to every call even with an admin key: none may.
AUTH_ONLY = {401, 403}


def fuzz_config(fake: FakeUpstream, *, auth: bool) -> dict[str, Any]:
    def deployment(provider: str, name: str, base: str) -> dict[str, Any]:
        return {"provider": provider, "model": name, "api_base": base, "api_key": "x"}

    return {
        "server": {"host": "127.0.0.1", "graceful_shutdown_s": 2, "max_body_bytes": 64 * 1024},
        "models": [  # the first of each kind is what the document's examples call
            {"name": "st-chat", "deployments": [deployment("openai", "st-chat", fake.openai_base)]},
            {"name": "st-claude", "deployments": [deployment("anthropic", "st-claude", fake.base_url)]},
            {
                "name": "st-embed",
                "kind": "embedding",
                "deployments": [deployment("openai", "st-embed", fake.openai_base)],
            },
        ],
        "router": {"retries": 0},
        # The insights event stream otherwise stays open for minutes: each call gets a short one.
        "insights": {"stream": {"max_connection_s": 0.5}},
        "local": {"enabled": False, "embeddings_enabled": False},
        "auth": {"enabled": auth},
        # Fuzzed tenant settings (rpm: 1, a budget of a cent) would otherwise starve the rest of the
        # run of successes; limits and budgets have suites of their own.
        "limits": {"enabled": False},
        "budgets": {"enabled": False},
        "logging": {"level": "warning"},
    }


@dataclass
class RunFigures:
    cases: int = 0
    #: "METHOD /path" -> status -> answers
    statuses: dict[str, collections.Counter[int]] = field(
        default_factory=lambda: collections.defaultdict(collections.Counter)
    )
    failures: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        by_status: collections.Counter[int] = collections.Counter()
        for counts in self.statuses.values():
            by_status.update(counts)
        return (
            f"{len(self.statuses)} operations, {self.cases} cases in {self.seconds:.1f} s, "
            f"{len(self.failures)} failures; answers by status: {dict(sorted(by_status.items()))}"
        )


@contextlib.contextmanager
def protecting_key(key_id: str | None) -> Iterator[None]:
    """Keep the run from revoking (or renaming) the key it authenticates with.

    Schemathesis feeds ids from earlier answers (``GET /keys``) into later calls, so it finds its
    own key's id and revokes it, after which every call is a 401. That is correct behaviour, but
    the rest of the run would test nothing; the call is sent for a key that does not exist instead.
    """

    def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
        if key_id is not None and (case.path_parameters or {}).get("key_id") == key_id:
            case.path_parameters["key_id"] = "0" * 32

    GLOBAL_HOOK_DISPATCHER.register_hook_with_name(before_call, "before_call")
    try:
        yield
    finally:
        GLOBAL_HOOK_DISPATCHER.unregister(before_call)


def run_config(headers: dict[str, str], *, coverage: bool) -> SchemathesisConfig:
    return SchemathesisConfig.from_dict(
        {
            "headers": headers,
            "workers": 1,
            "request-timeout": 60,  # generous: a loaded CI machine is slow, never a failure
            "seed": 20260101,  # the same cases every run: a failure reproduces
            "generation": {"max-examples": MAX_EXAMPLES},
            "phases": {
                "examples": {"enabled": True},
                # Boundary and negative cases of every field; one odd method per path for the 405s.
                "coverage": {"enabled": coverage, "unexpected-methods": ["trace"]},
                "fuzzing": {"enabled": True},
                "stateful": {"enabled": False},
            },
            # Their coverage cases would be half of the run, and tests/gateway/test_fuzz.py already
            # throws hundreds of hostile bodies at each; here they get the examples and the fuzzing.
            "operations": [
                {"include-operation-id": list(COVERED_ELSEWHERE), "phases": {"coverage": {"enabled": False}}}
            ],
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        }
    )


def run_schemathesis(base_url: str, headers: dict[str, str], key_id: str | None, *, coverage: bool) -> RunFigures:
    config = run_config(headers, coverage=coverage)
    schema = schemathesis.openapi.from_url(base_url + "/openapi.json", config=config)
    figures = RunFigures()
    started = time.monotonic()
    with protecting_key(key_id):
        for event in schemathesis.engine.from_schema(schema).execute():
            if isinstance(event, events.ScenarioFinished):
                for interaction in event.recorder.interactions.values():
                    figures.cases += 1
                    if interaction.response is not None:
                        figures.statuses[event.recorder.label][interaction.response.status_code] += 1
                for check in (c for checks in event.recorder.checks.values() for c in checks):
                    if check.failure_info is not None:
                        failure = check.failure_info.failure
                        figures.failures.append(
                            f"{event.recorder.label}: {check.name}: {failure.title}: {failure.message}\n"
                            f"  {check.failure_info.code_sample}"
                        )
            elif isinstance(event, events.NonFatalError | events.FatalError):
                figures.errors.append(str(event))
    figures.seconds = time.monotonic() - started
    return figures


# The walk over every operation takes about 140 s with authentication on a quiet two-core machine
# and three times that on a slow one; the suite's 300 s limit is for a test that hangs, not this.
@pytest.mark.timeout(900)
@pytest.mark.parametrize("auth", [True, False], ids=["auth-on", "auth-off"])
def test_every_answer_matches_the_document(
    gateway_cluster: ClusterFactory,  # noqa: F811
    fake_upstream: FakeUpstream,
    auth: bool,
) -> None:
    cluster = gateway_cluster(fuzz_config(fake_upstream, auth=auth), processes=1)
    headers: dict[str, str] = {}
    key_id = None
    if auth:
        created = cluster.cli("keys", "create", "--tenant", "ops", "--role", "admin", "--platform", "--json")
        assert created.returncode == 0, created.stderr
        key = json.loads(created.stdout)
        headers, key_id = {"Authorization": f"Bearer {key['key']}"}, key["id"]
    # Anonymous calls reach the same validation as the admin's: the coverage phase runs once.
    figures = run_schemathesis(cluster.urls[0], headers, key_id, coverage=auth)
    print(f"\nschemathesis, auth {'on' if auth else 'off'}: {figures.summary()}")
    assert not figures.errors, "\n".join(figures.errors)
    assert not figures.failures, "\n".join(figures.failures)
    # Every operation was called (but the document's own, which the run loads rather than tests).
    documented = {f"{op.method.upper()} {op.path}" for op in OPERATIONS} - {"GET /openapi.json"}
    assert set(figures.statuses) == documented
    if auth:
        stuck = sorted(label for label, counts in figures.statuses.items() if set(counts) <= AUTH_ONLY)
        assert not stuck, f"only 401/403 with an admin key: {stuck}"
