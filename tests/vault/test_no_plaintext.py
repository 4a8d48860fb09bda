"""The promise of the vault: prompt text and canaries exist in the clear only in memory and in the
upstream request. Not in the database (raw SQLite file bytes, every PostgreSQL row), the ledger
journal, the logs, the metrics or any response."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest
from prometheus_client import REGISTRY, generate_latest
from sqlalchemy import select

from bastion.store.db import Database
from bastion.store.models import Base, Interaction
from tests.support.fake_upstream import FakeUpstream
from tests.vault.gateway_support import UPSTREAM_MODEL, VaultGateway
from tests.vault.support import SECRET_TEXT

HI = [{"role": "user", "content": "hi"}]
TEMPLATE_TEXT = "Internal routing note QUOKKA-5521 for {{ customer }}."


def _needles(canaries: list[str]) -> list[bytes]:
    """Each secret as UTF-8 and as hex (PostgreSQL renders bytea as hex in row text)."""
    texts = [SECRET_TEXT, "QUOKKA-5521", *canaries]
    return [t.encode() for t in texts] + [t.encode().hex().encode() for t in texts]


async def _database_bytes(db: Database, database_url: str, data_dir: Path) -> bytes:
    if database_url.startswith("sqlite"):
        path = Path(database_url.removeprefix("sqlite:///"))
        files = [p for p in path.parent.glob(path.name + "*") if p.is_file()]  # the file, -wal and -shm
        assert path in files
        return b"".join(p.read_bytes() for p in files)
    connection = await asyncpg.connect(database_url)
    try:
        dump = []
        for table in Base.metadata.sorted_tables:
            rows = await connection.fetch(f'SELECT t::text AS row FROM "{table.name}" t')
            dump += [row["row"].encode() for row in rows]
        return b"\n".join(dump)
    finally:
        await connection.close()


async def test_no_plaintext_anywhere(
    vault_gateway: VaultGateway,
    fake: FakeUpstream,
    database: Database,
    database_url: str,
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    env = vault_gateway
    responses = []
    created = await env.admin(
        "POST",
        "",
        json={
            "prompt_id": "support-bot",
            "system_prompt": SECRET_TEXT,
            "user_template": TEMPLATE_TEXT,
            "model": "vault-model",
        },
    )
    responses.append(created)
    responses.append(await env.admin("POST", "/support-bot/clone", json={"new_prompt_id": "support-copy"}))
    responses.append(await env.admin("GET", ""))
    responses.append(await env.admin("GET", "/support-bot"))
    responses.append(await env.admin("GET", "/support-bot/versions"))
    responses.append(await env.client.get("/v1/models", headers=env.auth("acme-service")))
    variables = {"variables": {"customer": "Ann"}}
    for stream in (False, True):
        common = {"messages": HI, "bastion": variables, "stream": stream}
        responses.append(await env.chat({"model": "prompt:support-bot", **common}))
        responses.append(await env.messages({"model": "prompt:support-copy", "max_tokens": 20, **common}))
    responses.append(await env.chat({"model": "prompt:support-bot", "messages": HI}))  # variable missing: 400
    assert [r.status_code for r in responses] == [201, 201, 200, 200, 200, 200, 200, 200, 200, 200, 400]

    # The canaries did reach the upstream, inside the system message.
    received = fake.requests(UPSTREAM_MODEL)
    assert len(received) == 4 and len(env.canaries) == 4
    for request, canary in zip(received, env.canaries, strict=True):
        assert SECRET_TEXT in request.body["messages"][0]["content"]
        assert canary in request.body["messages"][0]["content"]

    metrics = generate_latest(REGISTRY)
    await env.gateway.stop()  # drains the ledger into the database
    async with database.session() as session:
        recorded = (await session.execute(select(Interaction).order_by(Interaction.created_at))).scalars().all()
    assert [(r.prompt_id, r.prompt_version) for r in recorded if r.status == 200] == [
        ("support-bot", 1),
        ("support-copy", 1),
        ("support-bot", 1),
        ("support-copy", 1),
    ]
    stored = await _database_bytes(database, database_url, env.data_dir)
    journal = b"".join(p.read_bytes() for p in (env.data_dir / "journal").rglob("*") if p.is_file())
    captured = capfd.readouterr()
    logs = (captured.out + captured.err + caplog.text).encode()
    sent = b"".join(r.content for r in responses)
    assert len(stored) > 0 and b"support-bot" in stored  # the dump is real: it has the prompt's id
    for needle in _needles(env.canaries):
        for where, blob in (("database", stored), ("journal", journal), ("logs", logs), ("metrics", metrics)):
            assert needle not in blob, f"{needle[:24]!r} found in the {where}"
        assert needle not in sent, f"{needle[:24]!r} found in a response"
