"""Fixtures shared by the test suites.

The gateway integration tests (tests/gateway) run against a real ``bastion serve`` subprocess
whose deployments point at a scriptable fake upstream (tests/support/fake_upstream.py). Both are
session-scoped: starting the gateway (and loading the embedded models) once keeps the suite fast.
Heavy imports happen inside the fixtures so suites that do not use them pay nothing.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.markers import apply_markers, processes_refused

if TYPE_CHECKING:
    import anthropic
    import httpx
    import openai

    from tests.support.fake_upstream import FakeUpstream
    from tests.support.gateway import GatewayProcess

#: Gateway processes started in this session, so a failing test can show their logs.
_GATEWAYS: list[GatewayProcess] = []


@pytest.fixture(scope="session")
def fake_upstream() -> Iterator[FakeUpstream]:
    from tests.support.fake_upstream import FakeUpstream

    with FakeUpstream() as fake:
        yield fake


@pytest.fixture
def fake(fake_upstream: FakeUpstream) -> FakeUpstream:
    """The session's fake upstream, with scripts and recorded requests cleared for this test."""
    fake_upstream.reset()
    return fake_upstream


@pytest.fixture(scope="session")
def gateway(fake_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    """The real gateway: ``bastion serve --config <tmp yaml> --port <free>``, stopped with SIGTERM."""
    from tests.support.gateway import GatewayProcess, gateway_config, write_config

    workdir = tmp_path_factory.mktemp("gateway")
    config = write_config(workdir / "bastion.yaml", gateway_config(fake_upstream.base_url, workdir / "data"))
    process = GatewayProcess(config, workdir / "gateway.log")
    process.start()
    _GATEWAYS.append(process)
    try:
        process.warm_up()
    except BaseException:
        process.stop()
        _GATEWAYS.remove(process)
        raise
    try:
        yield process
    finally:
        process.stop()
        _GATEWAYS.remove(process)


@pytest.fixture
def openai_client(gateway: GatewayProcess) -> Iterator[openai.OpenAI]:
    import openai

    # max_retries=0: the gateway's retries are under test, not the SDK's.
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key="test-key", max_retries=0, timeout=60) as client:
        yield client


@pytest.fixture
def anthropic_client(gateway: GatewayProcess) -> Iterator[anthropic.Anthropic]:
    import anthropic

    with anthropic.Anthropic(base_url=gateway.url, api_key="test-key", max_retries=0, timeout=60) as client:
        yield client


@pytest.fixture
def http(gateway: GatewayProcess) -> Iterator[httpx.Client]:
    """A plain HTTP client on the gateway, for what the SDKs hide (headers, raw bodies)."""
    import httpx

    with httpx.Client(base_url=gateway.url, timeout=60) as client:
        yield client


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, object, object]:
    with processes_refused(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Generator[None, Any, Any]:
    report = yield
    # On failure, attach the gateway's log: most gateway bugs show up there, not in the client.
    if report.failed and _GATEWAYS and "gateway" in getattr(item, "fixturenames", ()):
        for process in _GATEWAYS:
            report.sections.append((f"bastion gateway log ({process.log_path})", process.log_tail(120)))
    return report


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Markers follow from the fixtures a test uses (tests/support/markers.py).
    apply_markers(items)
