"""Per-chat cost of the session layer (not collected by pytest).

    .venv/bin/python -m bench.sessions_bench [--chats 300] [--postgresql]

The in-process gateway with the default pipeline (auth, prompt, ledger, ...) and a fake upstream.
It sends the same conversation two ways and compares the gateway's own ``x-bastion-overhead-ms``
(wall time less upstream time):

* ``/api/v1/ai/chat`` on a session (ownership and expiry check, message limits, history window
  from the database, storing the exchange);
* ``/v1/chat/completions`` with the same prompt and the same windowed messages, sent by the client.

The difference of the medians is what the session layer adds per chat.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import uuid
from pathlib import Path

import asyncpg

from bastion.store.db import Database
from bastion.store.migrate import upgrade
from tests.sessions.support import PROMPT, create_prompts, seed_keys, session_settings
from tests.support.db import PG_ADMIN_DSN, pg_url
from tests.support.fake_upstream import FakeUpstream
from tests.support.harness import running_gateway


async def run(chats: int, database_url: str, data_dir: Path) -> tuple[list[float], list[float]]:
    with FakeUpstream() as fake:
        settings = session_settings(
            database_url, data_dir, fake, sessions={"agent_rpm": None, "user_messages_per_hour": None}
        )
        db = Database.from_settings(settings)
        await upgrade(db.engine)
        keys = await seed_keys(db)
        await db.dispose()
        headers = {"authorization": f"Bearer {keys['ann']}"}
        session_ms: list[float] = []
        direct_ms: list[float] = []
        async with running_gateway(settings, timeout_s=30) as env:
            services, client = env.gateway.services, env.client
            await create_prompts(env.gateway, [keys["acme_id"], keys["globex_id"]])
            start = await client.post("/api/v1/ai/sessions/start", json={"prompt_id": PROMPT}, headers=headers)
            agent_id = start.json()["agent_id"]
            principal = await services.authenticator.authenticate(headers)
            for i in range(chats):
                message = f"question number {i}"
                # What the session would send, built the same way, for the direct call.
                prepared = await services.sessions.prepare_chat(principal, agent_id, message, f"req_bench_{i}")
                direct = await client.post(
                    "/v1/chat/completions",
                    json={"model": f"prompt:{PROMPT}", "messages": prepared.body["messages"]},
                    headers=headers,
                )
                reply = await client.post(
                    "/api/v1/ai/chat", json={"agent_id": agent_id, "message": message}, headers=headers
                )
                assert direct.status_code == 200 and reply.status_code == 200, (direct.text, reply.text)
                if i >= 10:  # warm-up excluded
                    direct_ms.append(float(direct.headers["x-bastion-overhead-ms"]))
                    session_ms.append(float(reply.headers["x-bastion-overhead-ms"]))
    return session_ms, direct_ms


def report(name: str, session_ms: list[float], direct_ms: list[float]) -> None:
    s, d = statistics.median(session_ms), statistics.median(direct_ms)
    s95 = statistics.quantiles(session_ms, n=20)[18]
    print(f"{name}: session chat median {s:.2f} ms (p95 {s95:.2f}), direct /v1 median {d:.2f} ms, added {s - d:.2f} ms")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chats", type=int, default=300)
    parser.add_argument("--postgresql", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report("SQLite", *await run(args.chats, f"sqlite:///{tmp}/bench.db", Path(tmp) / "data"))
    if args.postgresql:
        name = f"bastion_bench_{uuid.uuid4().hex[:8]}"
        admin = await asyncpg.connect(PG_ADMIN_DSN)
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            with tempfile.TemporaryDirectory() as tmp:
                report("PostgreSQL", *await run(args.chats, pg_url(name), Path(tmp) / "data"))
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
