"""``GET /openapi.json``: a valid OpenAPI 3.1 document with every route the app serves and no other,
security that follows the settings, and answers that match it: a walk through the whole API as a
client uses it (model calls, streams, the admin, ledger and prompt APIs, agent sessions) holds
every answer against the served document, so response models cannot drift from the handlers.
Random inputs against the document are tests/gateway/test_schemathesis.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import httpx
import pytest
from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR
from starlette.routing import Route

from bastion.api.app import create_app
from bastion.config.settings import Settings
from bastion.gateway.agent_runs import GatewayToolbox
from bastion.jobs.model import NewJob
from bastion.openapi.document import CREDENTIALS, DocumentOptions, build_document
from bastion.openapi.operations import OPERATIONS
from tests.agents.armfakes import FakeSandbox, RefusedFake, make_spec
from tests.gateway.openapi_support import (
    CHAT,
    CLAUDE,
    EMBED,
    DocumentChecker,
    Running,
    Walk,
    openapi_settings,
    route_template,
    running,
)
from tests.knowledge.conftest import FakeEmbedder
from tests.knowledge.routes_support import PaddedEmbedder
from tests.redteam.openapi_walk import walk_redteam
from tests.sessions.support import eventually
from tests.support.fake_upstream import FakeUpstream


async def _document(tmp_path: Path, fake: FakeUpstream, **overrides: Any) -> dict[str, Any]:
    async with running(openapi_settings(tmp_path, fake, **overrides)) as gw:
        response = await gw.client.get("/openapi.json")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    document: dict[str, Any] = response.json()
    return document


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        return found.union(*(_refs(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(item) for item in node))
    return set()


async def test_the_document_is_valid_openapi_3_1(tmp_path: Path, fake_upstream: FakeUpstream) -> None:
    document = await _document(tmp_path, fake_upstream)
    assert document["openapi"] == "3.1.0"
    assert list(OPENAPI_31_VALIDATOR.iter_errors(document)) == []
    for target in _refs(document):  # every reference resolves
        assert target.startswith("#/components/"), target
        node: Any = document
        for part in target[2:].split("/"):
            assert part in node, f"unresolved {target}"
            node = node[part]
    # The request schemas are the validators' own (not a copy): a field added there shows up here.
    chat = document["components"]["schemas"]["OpenAIChatCompletionRequest"]
    assert {"model", "messages", "stream", "bastion", "max_completion_tokens"} <= set(chat["properties"])
    # The examples name models this gateway serves, so they work as they are.
    chat_op = document["paths"]["/v1/chat/completions"]["post"]
    assert chat_op["requestBody"]["content"]["application/json"]["example"]["model"] == CHAT
    embeddings = document["paths"]["/v1/embeddings"]["post"]["requestBody"]["content"]["application/json"]
    assert embeddings["example"]["model"] == EMBED


def test_every_route_the_app_serves_is_documented_and_nothing_else(tmp_path: Path) -> None:
    settings = Settings.model_validate({"data_dir": str(tmp_path), "local": {"enabled": False}})
    app = create_app(settings)
    served = {
        f"{method} {route_template(route.path)}"
        for route in app.routes
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD"  # Starlette answers HEAD wherever GET is served
    }
    assert all(isinstance(route, Route) for route in app.routes)  # no mounts hiding routes
    documented = {
        f"{method.upper()} {path}"
        for path, item in build_document(DocumentOptions())["paths"].items()
        for method in item
    }
    assert served - documented == set(), "served but not in the document"
    assert documented - served == set(), "documented but not served"
    assert len({op.operation_id for op in OPERATIONS}) == len(OPERATIONS)  # operationIds are unique


async def _walk_knowledge(gw: Running, call: Walk, example: dict[str, Any]) -> None:
    knowledge = gw.gateway.services.knowledge
    assert knowledge is not None
    embed = PaddedEmbedder(FakeEmbedder())
    knowledge.embed = embed
    collections = "/v1/knowledge/collections"
    one, docs = f"{collections}/{{collection}}", f"{collections}/{{collection}}/documents"
    name = example["createKnowledgeCollection"]["name"]
    await call("POST", collections, json=example["createKnowledgeCollection"])
    assert (await call("POST", collections, json=example["createKnowledgeCollection"])).status_code == 409
    await call("GET", collections)
    await call("GET", one, collection=name)
    await call("POST", docs, collection=name, json=example["ingestKnowledgeDocuments"])
    await call("POST", docs, collection=name, **_file_form("notes.md", b"# Notes\n\nParcels ship on Mondays."))
    assert (await call("POST", docs, collection=name, **_file_form("x.docx", b"PK"))).status_code == 415
    later = {"documents": [{"id": "later", "text": "Written by the job."}], "background": True}
    queued = (await call("POST", docs, collection=name, json=later)).json()

    async def job_state(job_id: str) -> str:
        answer = await gw.client.get(f"/v1/knowledge/jobs/{job_id}", headers=gw.admin)
        state: str = answer.json()["state"]
        return state

    await eventually(lambda: _is(job_state(queued["id"]), "succeeded"), what="the ingestion job ran")
    await call("GET", "/v1/knowledge/jobs/{job_id}", job_id=queued["id"])
    hold = asyncio.Event()

    async def held(texts: list[str]) -> list[list[float]]:
        await hold.wait()
        return await embed(texts)

    knowledge.embed = held  # the next job holds still, so it can be cancelled
    second = (
        await call("POST", docs, collection=name, json={**later, "documents": [{"id": "x", "text": "X."}]})
    ).json()
    await call("POST", "/v1/knowledge/jobs/{job_id}/cancel", job_id=second["id"])
    hold.set()
    knowledge.embed = embed
    await call("GET", docs, collection=name, query="?limit=1")
    await call("GET", f"{docs}/{{document}}", collection=name, document=example["ingestKnowledgeDocuments"]["id"])
    assert (await call("POST", "/v1/knowledge/search", json=example["searchKnowledge"])).json()["data"]
    await _walk_agents(gw, call, example)
    await call("POST", f"{docs}/delete", collection=name, json=example["deleteKnowledgeDocumentsByFilter"])
    await call("DELETE", f"{docs}/{{document}}", collection=name, document="notes.md")
    await call("DELETE", one, collection=name)


async def _walk_agents(gw: Running, call: Walk, example: dict[str, Any]) -> None:
    """Agent runs over the knowledge collection above; the coder calls the chat model."""
    runs, run = "/v1/agents/runs", "/v1/agents/runs/{run_id}"
    agents = gw.gateway.services.agents
    assert agents is not None and isinstance(agents.toolbox, GatewayToolbox)
    agents.toolbox.sandbox = (FakeSandbox(), make_spec, (RefusedFake,))  # the real one's self-test starts processes
    await call("GET", "/v1/agents/templates")
    await call("GET", "/v1/agents/sandbox")
    done = (await call("POST", runs, json=example["createAgentRun"])).json()
    assert done["finished_at"] is not None and done["events"] > 0, done
    await call("GET", run, run_id=done["id"])
    assert (await call("GET", f"{run}/trace", run_id=done["id"])).json()["verified"] is True
    assert _sse_data(await call("GET", f"{run}/events", run_id=done["id"]))[-1]["object"] == "agent.run"
    streamed = {**example["createAgentRun"], "wait": False, "stream": True}
    assert _sse_data(await call("POST", runs, json=streamed))[-1]["object"] == "agent.run"
    knowledge = gw.gateway.services.knowledge
    assert knowledge is not None
    embed, hold = knowledge.embed, asyncio.Event()

    async def held(texts: list[str]) -> list[list[float]]:
        await hold.wait()
        return await embed(texts)

    knowledge.embed = held  # the next run's retrieval holds still, so it can be cancelled
    queued = (await call("POST", runs, json={**example["createAgentRun"], "wait": False})).json()
    # The answer is the run as stored once submitted: a worker may already have taken it.
    assert queued["status"] in ("queued", "running")
    assert (await call("POST", f"{run}/cancel", run_id=queued["id"])).json()["id"] == queued["id"]
    hold.set()
    knowledge.embed = embed


async def _is(value: Awaitable[str], expected: str) -> bool:
    return await value == expected


def _security(document: dict[str, Any], method: str, path: str) -> list[Any]:
    security: list[Any] = document["paths"][path][method]["security"]
    return security


@pytest.mark.parametrize(
    ("auth", "server", "expected"),
    [
        # auth on, defaults: credentials everywhere; /metrics needs them; /readyz takes them for details
        (True, {}, {"models": CREDENTIALS, "metrics": CREDENTIALS, "readyz": [{}, *CREDENTIALS]}),
        # auth off: credentials optional; the operational endpoints are as open as the rest
        (False, {}, {"models": [{}, *CREDENTIALS], "metrics": [], "readyz": []}),
        # auth on, the operator opened the operational endpoints
        (
            True,
            {"public_metrics": True, "public_readyz_details": True},
            {"models": CREDENTIALS, "metrics": [], "readyz": []},
        ),
        # auth off, the operator closed them
        (
            False,
            {"public_metrics": False, "public_readyz_details": False},
            {"models": [{}, *CREDENTIALS], "metrics": CREDENTIALS, "readyz": [{}, *CREDENTIALS]},
        ),
    ],
    ids=["auth-on", "auth-off", "auth-on-public-ops", "auth-off-closed-ops"],
)
def test_security_follows_the_settings(auth: bool, server: dict[str, Any], expected: dict[str, Any]) -> None:
    settings = Settings.model_validate({"auth": {"enabled": auth}, "server": server})
    document = build_document(DocumentOptions.of(settings))
    assert _security(document, "get", "/v1/models") == expected["models"]
    assert _security(document, "post", "/api/v1/admin/keys") == expected["models"]
    assert _security(document, "get", "/metrics") == expected["metrics"]
    assert _security(document, "get", "/readyz") == expected["readyz"]
    assert _security(document, "get", "/healthz") == []
    assert _security(document, "get", "/openapi.json") == []
    metrics_answers = document["paths"]["/metrics"]["get"]["responses"]
    assert ("401" in metrics_answers) == (expected["metrics"] == CREDENTIALS)


def _sse_data(response: httpx.Response) -> list[Any]:
    lines = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
    return [line if line == "[DONE]" else json.loads(line) for line in lines]


def said_to(session: dict[str, Any]) -> dict[str, Any]:
    return {"agent_id": session["agent_id"]}


def _multipart(purpose: str, content: bytes) -> dict[str, Any]:
    return _file_form("notes.txt", content, {"purpose": purpose})


def _file_form(filename: str, content: bytes, fields: dict[str, str] | None = None) -> dict[str, Any]:
    """An upload's body and content type (read, not streamed: the checker needs the request's bytes)."""
    request = httpx.Request("POST", "/", data=fields or {}, files={"file": (filename, content)})
    return {"content": request.read(), "headers": {"content-type": request.headers["content-type"]}}


async def test_every_operation_answers_as_documented(tmp_path: Path, fake: FakeUpstream) -> None:
    async with running(openapi_settings(tmp_path, fake, agents={"model": CHAT})) as gw:
        document = (await gw.client.get("/openapi.json")).json()
        checker = DocumentChecker(document)
        call = Walk(gw.client, checker, gw.admin)
        example = {
            op["operationId"]: op["requestBody"]["content"]["application/json"].get("example")
            for item in document["paths"].values()
            for op in item.values()
            if "application/json" in op.get("requestBody", {}).get("content", {})
        }

        # -- system
        await call("GET", "/healthz", anonymous=True)
        await call("GET", "/openapi.json", anonymous=True)
        assert (await call("GET", "/readyz", anonymous=True)).json() == {"status": "ready"}
        assert "deployments" in (await call("GET", "/readyz")).json()
        await call("GET", "/metrics")
        assert (await call("GET", "/metrics", anonymous=True)).status_code == 401

        # -- model endpoints, with the document's own examples
        await call("GET", "/v1/models")
        await call("GET", "/v1/models/{model}", model=CHAT)
        assert (await call("GET", "/v1/models/{model}", model="no-such-model")).status_code == 404
        chat = await call("POST", "/v1/chat/completions", json=example["createChatCompletion"])
        streamed = {**example["createChatCompletion"], "stream": True, "stream_options": {"include_usage": True}}
        assert _sse_data(await call("POST", "/v1/chat/completions", json=streamed))[-1] == "[DONE]"
        await call("POST", "/chat/completions", json=example["createChatCompletionUnversioned"])
        await call("POST", "/v1/completions", json=example["createCompletion"])
        text_stream = {**example["createCompletion"], "stream": True, "stream_options": {"include_usage": True}}
        assert _sse_data(await call("POST", "/v1/completions", json=text_stream))[-1] == "[DONE]"
        await call("POST", "/completions", json=example["createCompletionUnversioned"])
        await call("POST", "/v1/embeddings", json=example["createEmbedding"])
        await call("POST", "/v1/moderations", json=example["createModeration"])
        await call("POST", "/v1/messages/count_tokens", json=example["countMessageTokens"])
        await call("POST", "/embeddings", json={**example["createEmbedding"], "encoding_format": "base64"})
        for model in (CHAT, CLAUDE):
            body = {**example["createMessage"], "model": model}
            await call("POST", "/v1/messages", json=body)
            events = _sse_data(await call("POST", "/v1/messages", json={**body, "stream": True}))
            assert events[-1]["type"] == "message_stop"
        assert (await call("POST", "/v1/messages", json={"model": CHAT})).status_code == 400

        # -- the Responses API
        created = (await call("POST", "/v1/responses", json=example["createResponse"])).json()
        streamed_response = await call("POST", "/v1/responses", json={**example["createResponse"], "stream": True})
        assert _sse_data(streamed_response)[-1]["type"] == "response.completed"
        await call("GET", "/v1/responses/{response_id}", response_id=created["id"])
        await call("GET", "/v1/responses/{response_id}/input_items", response_id=created["id"], query="?limit=1")
        await call("POST", "/v1/responses/input_tokens", json=example["countResponseInputTokens"])
        await call("DELETE", "/v1/responses/{response_id}", response_id=created["id"])
        assert (await call("GET", "/v1/responses/{response_id}", response_id=created["id"])).status_code == 404

        # -- the Files API (multipart upload)
        uploaded = (await call("POST", "/v1/files", **_multipart("user_data", b"hello"))).json()
        assert (await call("POST", "/v1/files", **_multipart("batch", b"hello"))).status_code == 400
        await call("GET", "/v1/files", query="?limit=1&order=asc")
        await call("GET", "/v1/files/{file_id}", file_id=uploaded["id"])
        assert (await call("GET", "/v1/files/{file_id}/content", file_id=uploaded["id"])).content == b"hello"
        await call("DELETE", "/v1/files/{file_id}", file_id=uploaded["id"])
        assert (await call("GET", "/v1/files/{file_id}", file_id=uploaded["id"])).status_code == 404

        # -- the batch APIs (the lines run in the gateway's own workers)
        line = {
            "custom_id": "a",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": example["createChatCompletion"],
        }
        batch_input = (await call("POST", "/v1/files", **_multipart("batch", json.dumps(line).encode()))).json()
        batch_body = {
            "input_file_id": batch_input["id"],
            "endpoint": "/v1/chat/completions",
            "completion_window": "24h",
        }
        batch = (await call("POST", "/v1/batches", json=batch_body)).json()
        await call("GET", "/v1/batches", query="?limit=1")
        second = (await call("POST", "/v1/batches", json=batch_body)).json()
        await call("POST", "/v1/batches/{batch_id}/cancel", batch_id=second["id"])

        async def ended(path: str, batch_id: str, field: str, value: str) -> bool:
            answer = await gw.client.get(f"{path}/{batch_id}", headers=gw.admin)
            return bool(answer.json()[field] == value)

        await eventually(lambda: ended("/v1/batches", batch["id"], "status", "completed"), what="the batch ran")
        await call("GET", "/v1/batches/{batch_id}", batch_id=batch["id"])
        message_batch = (await call("POST", "/v1/messages/batches", json=example["createMessageBatch"])).json()
        await call("GET", "/v1/messages/batches", query="?limit=1")
        await eventually(
            lambda: ended("/v1/messages/batches", message_batch["id"], "processing_status", "ended"),
            what="the message batch ran",
        )
        await call("GET", "/v1/messages/batches/{batch_id}", batch_id=message_batch["id"])
        await call("GET", "/v1/messages/batches/{batch_id}/results", batch_id=message_batch["id"])
        other = (await call("POST", "/v1/messages/batches", json=example["createMessageBatch"])).json()
        await call("POST", "/v1/messages/batches/{batch_id}/cancel", batch_id=other["id"])
        await eventually(
            lambda: ended("/v1/messages/batches", other["id"], "processing_status", "ended"), what="it ended"
        )
        await call("DELETE", "/v1/messages/batches/{batch_id}", batch_id=other["id"])

        # -- identity
        admin = "/api/v1/admin"
        await call("GET", f"{admin}/me")
        await call("GET", f"{admin}/tenant")
        await call("PATCH", f"{admin}/tenant", json=example["updateOwnTenant"])
        await call("GET", f"{admin}/tenants", query="?limit=1")
        tenant = (await call("POST", f"{admin}/tenants", json=example["createTenant"])).json()
        await call("GET", f"{admin}/tenants/{{tenant_id}}", tenant_id=tenant["id"])
        await call("PATCH", f"{admin}/tenants/{{tenant_id}}", tenant_id=tenant["id"], json={"disabled": False})
        await call("POST", f"{admin}/tenants/{{tenant_id}}/keys", tenant_id=tenant["id"], json={"role": "admin"})
        await call("GET", f"{admin}/users")
        user = (await call("POST", f"{admin}/users", json=example["createUser"])).json()
        assert (await call("POST", f"{admin}/users", json=example["createUser"])).status_code == 409
        await call("GET", f"{admin}/users/{{user_id}}", user_id=user["id"])
        await call("PATCH", f"{admin}/users/{{user_id}}", user_id=user["id"], json={"name": "Dev"})
        key = (await call("POST", f"{admin}/keys", json={**example["createKey"], "user_id": user["id"]})).json()
        await call("GET", f"{admin}/keys", query="?include_revoked=false")
        await call("GET", f"{admin}/keys/{{key_id}}", key_id=key["id"])
        await call("PATCH", f"{admin}/keys/{{key_id}}", key_id=key["id"], json={"name": "ci-2"})
        await call("POST", f"{admin}/keys/{{key_id}}/revoke", key_id=key["id"])
        await call("DELETE", f"{admin}/users/{{user_id}}", user_id=user["id"])
        await call("GET", f"{admin}/audit")

        # -- ledger: the model calls above, once the writer has stored them
        async def recorded() -> Any:
            listing = (await gw.client.get(f"{admin}/interactions", headers=gw.admin)).json()
            return len(listing["data"]) >= 8

        await eventually(recorded, what="the model calls in the ledger")
        assert (await call("GET", f"{admin}/interactions", query="?flagged=false")).json()["data"]
        interaction_id = chat.headers["x-request-id"]
        await call("GET", f"{admin}/interactions/{{interaction_id}}", interaction_id=interaction_id)

        # -- review, datasets and fine-tune exports, on the model calls above
        review, datasets = f"{admin}/review", f"{admin}/datasets"
        prepare = {**example["prepareReview"], "reviewers_per_item": 1, "filter": {"limit": 2}}
        batch = (await call("POST", f"{admin}/ai/finetune/prepare", json=prepare)).json()
        await call("GET", f"{review}/batches", query="?limit=5")
        await call("GET", f"{review}/batches/{{batch_id}}", batch_id=batch["id"])
        claimed = (await call("POST", f"{review}/batches/{{batch_id}}/claim", batch_id=batch["id"])).json()["item"]
        await call("GET", f"{review}/items")
        item_id = claimed["id"]
        await call("POST", f"{admin}/ai/finetune/review/{{item_id}}", item_id=item_id, json=example["submitReview"])
        other = (await call("POST", f"{review}/batches/{{batch_id}}/claim", batch_id=batch["id"])).json()["item"]
        await call("POST", f"{review}/items/{{item_id}}/release", item_id=other["id"])
        assignment = {"item_id": other["id"], "reviewer": "user:someone"}
        await call("POST", f"{review}/batches/{{batch_id}}/assign", batch_id=batch["id"], json=assignment)
        await call("GET", f"{review}/items/{{item_id}}", item_id=item_id)
        await call("GET", f"{review}/batches/{{batch_id}}/progress", batch_id=batch["id"])
        await call("GET", f"{review}/batches/{{batch_id}}/agreement", batch_id=batch["id"])
        await call("POST", f"{datasets}/{{name}}/versions", name="openapi", json=example["buildDatasetVersion"])
        await call("GET", datasets)
        await call("GET", f"{datasets}/{{name}}", name="openapi")
        await call("GET", f"{datasets}/{{name}}/versions/{{version}}", name="openapi", version=1)
        exports = f"{datasets}/{{name}}/versions/{{version}}/exports"
        conversation = {"format": "anthropic", "system": "none"}
        export = (await call("POST", exports, name="openapi", version=1, json=conversation)).json()
        queued = (
            await call("POST", exports, name="openapi", version=1, json={**conversation, "background": True})
        ).json()
        assert queued["status"] == "queued" and queued["job_id"]
        await call("GET", exports, name="openapi", version=1)
        await call("GET", f"{admin}/dataset-exports/{{export_id}}", export_id=export["id"])
        await call("GET", f"{admin}/dataset-exports/{{export_id}}/content", export_id=export["id"])
        await call("GET", f"{admin}/ai/finetune/export", query="?dataset=openapi&format=anthropic&system=none")
        # -- insights: the recorded calls rolled up, then read; an external record ingested
        insights = gw.gateway.services.insights
        assert insights is not None
        await insights.rollup.run()
        assert (await call("GET", "/api/v1/insights/summary")).json()["requests"] >= 8
        for route in ("timeseries", "guard", "drift"):
            await call("GET", f"/api/v1/insights/{route}")
        await call("GET", "/api/v1/insights/top", query="?by=model&order=tokens")
        await call("GET", "/api/v1/insights/metrics", query="?by=model")
        await call("GET", "/api/v1/insights/experiments")
        await call("GET", "/api/v1/insights/alerts")
        admin_tenant = (await gw.gateway.services.authenticator.authenticate(gw.admin)).tenant_id
        await insights.events.publish(admin_tenant, "rollup", {"grain": "5m", "buckets": []})
        streamed_events = await call("GET", "/api/v1/insights/stream", headers={"last-event-id": "0"})
        assert b"event: rollup" in streamed_events.content
        assert (await call("GET", "/dashboard", anonymous=True)).headers["content-security-policy"]
        await call("GET", "/dashboard/static/{name}", anonymous=True, name="dashboard.js")
        assert (await call("GET", "/dashboard/static/{name}", anonymous=True, name="x.js")).status_code == 404
        await call("POST", "/api/metrics/ingest", json=example["ingestInteractions"])

        # -- jobs: one of a kind no worker runs, so it waits in the queue for the calls below
        submitted = await gw.gateway.services.jobs.submit(NewJob("openapi.example", payload={"n": 1}))
        await call("GET", f"{admin}/jobs", query="?state=queued&limit=5")
        await call("GET", f"{admin}/jobs/{{job_id}}", job_id=submitted.id)
        assert (await call("POST", f"{admin}/jobs/{{job_id}}/cancel", job_id=submitted.id)).json()[
            "state"
        ] == "cancelled"
        assert (await call("POST", f"{admin}/jobs/{{job_id}}/retry", job_id=submitted.id)).json()["state"] == "queued"
        assert (await call("POST", f"{admin}/jobs/{{job_id}}/retry", job_id=submitted.id)).status_code == 409

        # -- knowledge (the knowledge suite's embedder in place of the local model)
        await _walk_knowledge(gw, call, example)

        # -- red team (runs against the fake chat model, a garak import)
        await walk_redteam(gw, call, example)

        # -- prompts
        prompts, prompt = f"{admin}/ai/prompts", f"{admin}/ai/prompts/{{prompt_id}}"
        await call("POST", prompts, json=example["createPrompt"])
        await call("GET", prompts)
        await call("GET", prompt, prompt_id="support-bot")
        await call("PUT", prompt, prompt_id="support-bot", json=example["updatePrompt"])
        await call("GET", f"{prompt}/versions", prompt_id="support-bot")
        await call("POST", f"{prompt}/versions", prompt_id="support-bot", json=example["createPromptVersion"])
        await call("GET", f"{prompt}/versions/{{version}}/plaintext", prompt_id="support-bot", version=1)
        await call("POST", f"{prompt}/analyze", prompt_id="support-bot", json=example["analyzePrompt"])
        await call("POST", f"{prompt}/rewrite", prompt_id="support-bot", json=example["rewritePrompt"])
        await call("POST", f"{admin}/ai/analyze", json=example["analyzePromptText"])
        label = f"{prompt}/labels/{{label}}"
        await call("PUT", label, prompt_id="support-bot", label="production", json=example["movePromptLabel"])
        await call("POST", f"{prompt}/clone", prompt_id="support-bot", json=example["clonePrompt"])
        await call("POST", f"{prompt}/archive", prompt_id=example["clonePrompt"]["new_prompt_id"])

        # -- experiments, on the prompt made above; feedback on the first chat's interaction
        experiments, experiment = f"{admin}/experiments", f"{admin}/experiments/{{experiment_id}}"
        made = (await call("POST", experiments, json=example["createExperiment"])).json()
        await call("PATCH", experiment, experiment_id=made["id"], json=example["updateExperiment"])
        await call("POST", f"{experiment}/start", experiment_id=made["id"])
        await call("GET", experiments, query="?status=running")
        await call("GET", experiment, experiment_id=made["name"])
        await call("GET", f"{experiment}/results", experiment_id=made["id"])
        await call("GET", f"{experiment}/report", experiment_id=made["id"])
        bandit = {
            "name": "bandit",
            "target": {"model": CHAT},
            "variants": [{"name": "a"}, {"name": "b"}],
            "bandit": True,
        }
        bandit_id = (await call("POST", experiments, json=bandit)).json()["id"]
        await call("POST", f"{experiment}/start", experiment_id=bandit_id)
        await call("POST", f"{experiment}/weights", experiment_id=bandit_id)
        await call("GET", f"{experiment}/weights", experiment_id=bandit_id)
        await call("POST", f"{experiment}/stop", experiment_id=made["id"])
        await call("DELETE", experiment, experiment_id=made["id"])
        interaction = chat.headers["x-request-id"]

        async def chat_recorded() -> bool:
            answer = await gw.client.get(f"{admin}/interactions/{interaction}", headers=gw.admin)
            return answer.status_code == 200

        await eventually(chat_recorded, what="the first chat in the ledger")
        await call("POST", "/v1/feedback", json={**example["createFeedback"], "interaction_id": interaction})
        analysis = (await call("POST", f"{experiments}/analyze", json=example["analyzeSummaryStatistics"])).json()
        assert 0.9 < analysis["variants"][0]["chance_to_win"] < 1
        assert (await call("POST", f"{experiments}/sample-size", json=example["experimentSampleSize"])).json()[
            "per_arm"
        ] == 3841  # the pooled two-proportion formula for 0.10 -> 0.12 (docs/EXPERIMENTS.md)

        # -- agent sessions, on the prompt made above
        sessions = "/api/v1/ai/sessions"
        started = (await call("POST", f"{sessions}/start", json=example["startSession"])).json()
        said = {"agent_id": started["agent_id"], "message": "Hello"}
        await call("POST", "/api/v1/ai/chat", json=said)
        assert _sse_data(await call("POST", "/api/v1/ai/chat/stream", json=said))[-1]["type"] == "done"
        await call("GET", "/api/v1/ai/chat/stream", params=said)
        await call("GET", f"{sessions}/active")
        await call("GET", f"{sessions}/{{agent_id}}/history", agent_id=started["agent_id"], query="?limit=1")
        bulk = (await call("POST", "/api/v1/ai/batch", json={**example["submitBulk"], **said_to(started)})).json()

        async def bulk_ended() -> bool:
            answer = await gw.client.get(f"/api/v1/ai/batch/{bulk['id']}/status", headers=gw.admin)
            return bool(answer.json()["status"] == "succeeded")

        await eventually(bulk_ended, what="the bulk ran")
        await call("GET", "/api/v1/ai/batch/{batch_id}/status", batch_id=bulk["id"])
        await call("POST", f"{sessions}/end", json={"agent_id": started["agent_id"]})
        assert (await call("POST", "/api/v1/ai/chat", json=said)).status_code == 410  # ended

    missing = checker.operations() - checker.succeeded
    assert missing == set(), f"no successful answer checked: {sorted(missing)}"
