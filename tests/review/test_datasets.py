"""Datasets and exports on SQLite and PostgreSQL: versions of approved examples (edits as targets,
thresholds), every format checked by the independent validator in ``reference.py``, seeded bad
rows counted per named error, explicit repairs, system prompt options, byte-identical re-exports,
the export history and tenant isolation."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from bastion.auth.principal import Principal, Role
from bastion.config.work_settings import FilesSettings, ReviewSettings
from bastion.errors import InvalidRequest, NotFound, PermissionDenied
from bastion.files.service import FileService
from bastion.review.datasets import DatasetService
from bastion.review.models import Dataset, DatasetExample, DatasetVersion
from bastion.store.db import Database
from bastion.store.models import AuditEvent
from tests.review.reference import bedrock_ok, cookbook_format_errors, dpo_ok, jsonl
from tests.review.support import SCORES, FakeVault, add_interactions, interaction, review_all, service, tenants, who

VAULT = {("support-bot", 1): "You are Acme's support agent."}


@pytest.fixture
async def files(database: Database, tmp_path: Path) -> AsyncIterator[FileService]:
    service = FileService(database, FilesSettings(), tmp_path)
    await service.start()
    yield service
    await service.stop()


def datasets(db: Database, files: FileService, tmp_path: Path, vault: FakeVault | None = None) -> DatasetService:
    return DatasetService(db, files, ReviewSettings(), vault or FakeVault(VAULT), scratch_dir=tmp_path / "scratch")


async def content(files: FileService, admin: Principal, file_id: str) -> bytes:
    _meta, handle = await files.open_content(admin, file_id)
    with handle:
        return handle.read()


def _decide(index: int, item: dict[str, Any]) -> dict[str, Any]:
    """Reviewer 0 approves everything; reviewer 1 corrects item 0, rejects items >= 12 with low scores."""
    position = item["position"]
    if index == 1 and position == 0:
        return {"scores": SCORES, "verdict": "needs-edit", "corrected_answer": "A better answer."}
    if index == 1 and position >= 12:
        return {"scores": dict.fromkeys(SCORES, 1), "verdict": "reject", "feedback": "wrong"}
    return {"scores": SCORES, "verdict": "approve"}


async def _reviewed(db: Database, count: int = 14) -> tuple[dict[str, str], Principal]:
    ids = await tenants(db, "acme", "globex")
    history = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C, sunny"},
        {"role": "user", "content": "And tomorrow?"},
    ]  # fmt: skip
    rows = [
        interaction(ids["acme"], i, prompt_id="support-bot" if i % 2 else None, prompt_version=1 if i % 2 else None)
        for i in range(count)
    ]
    rows[1].request_messages = history
    rows[1].extra = {"tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]}
    await add_interactions(db, rows)
    reviews = service(db)
    admin = who(ids["acme"], "admin", Role.ADMIN)
    batch = await reviews.prepare(admin, {"reviewers_per_item": 2})
    await review_all(reviews, batch["id"], [who(ids["acme"], "ann"), who(ids["acme"], "bob")], _decide)
    return ids, admin


async def test_a_version_holds_the_approved_examples_with_edits_as_targets(
    database: Database, files: FileService, tmp_path: Path
) -> None:
    ids, admin = await _reviewed(database)
    sets = datasets(database, files, tmp_path)
    version = await sets.build_version(admin, "support", {})
    assert version["version"] == 1 and version["example_count"] == 12  # items 12 and 13 fail the thresholds
    manifest = (await sets.get_version(admin, "support", 1))["manifest"]
    assert manifest["counts"] == {
        "examples": 12, "edited": 1, "multi_turn": 1, "with_tool_calls": 1, "with_vault_prompt": 6,
    }  # fmt: skip
    assert manifest["source_interaction_ids"] == [f"req-{ids['acme'][:6]}-{i:05d}" for i in range(12)]
    assert manifest["thresholds"]["min_quality"] == 3.0 and manifest["tokens"]["total"] > 0
    assert manifest["agreement"]["reviews"] == 28 and manifest["created_by"] == admin.actor
    async with database.session() as session:
        first = await session.scalar(select(DatasetExample.example).where(DatasetExample.position == 0))
    assert first is not None
    example = orjson.loads(first)
    assert example["answer"] == "A better answer." and example["original_answer"] == "Answer 0."
    with pytest.raises(InvalidRequest, match="no reviewed item"):
        await sets.build_version(admin, "strict", {"min_quality": 4.9})
    second = await sets.build_version(admin, "support", {"multi_turn": False})
    assert second["version"] == 2
    assert [d["latest_version"] for d in await sets.list_datasets(admin)] == [2]


async def test_openai_export_passes_the_cookbook_checks_and_reexports_byte_identically(
    database: Database, files: FileService, tmp_path: Path
) -> None:
    _ids, admin = await _reviewed(database)
    vault = FakeVault(VAULT)
    sets = datasets(database, files, tmp_path, vault)
    await sets.build_version(admin, "support", {})
    export = await sets.request_export(admin, "support", 1, {"format": "openai"})
    assert export["status"] == "succeeded" and export["lines"] == 12
    data = await content(files, admin, export["file_id"])
    assert hashlib.sha256(data).hexdigest() == export["sha256"]
    lines = jsonl(data)
    assert cookbook_format_errors(lines) == {}
    assert all(
        line["messages"][-1] == {"role": "assistant", "content": line["messages"][-1]["content"], "weight": 1}
        for line in lines
    )
    assert lines[0]["messages"][-1]["content"] == "A better answer."
    tool_line = lines[1]
    assert tool_line["messages"][0] == {"role": "system", "content": VAULT[("support-bot", 1)]}
    assert tool_line["tools"][0]["function"]["name"] == "weather"
    assert [m.get("weight") for m in tool_line["messages"] if m["role"] == "assistant"] == [0, 1]
    assert {r[1] for r in vault.reads} == {"support-bot"}
    report = export["report"]
    assert report["errors"] == {} and report["written"] == 12
    assert report["warnings"]["missing_system_message"] == 6  # the even items have no prompt and no system message
    assert report["billing"]["default_epochs"] == 8  # 100 // 12, the cookbook's rule
    assert report["tokens"]["per_example"]["max"] >= report["tokens"]["per_example"]["min"] > 0
    again = await sets.request_export(admin, "support", 1, {"format": "openai"})
    assert again["id"] != export["id"] and again["sha256"] == export["sha256"]
    assert await content(files, admin, again["file_id"]) == data
    history = await sets.list_exports(admin, "support", 1)
    assert [h["id"] for h in history] == [again["id"], export["id"]]
    files_in_manifest = (await sets.get_version(admin, "support", 1))["manifest"]["files"]
    assert {f["sha256"] for f in files_in_manifest} == {export["sha256"]}
    async with database.session() as session:
        actions = list(await session.scalars(select(AuditEvent.action).where(AuditEvent.action.like("dataset.%"))))
    assert sorted(actions) == ["dataset.build", "dataset.export", "dataset.export"]


async def test_system_prompt_options_and_who_may_export_the_vault_text(
    database: Database, files: FileService, tmp_path: Path
) -> None:
    ids, admin = await _reviewed(database)
    sets = datasets(database, files, tmp_path)
    await sets.build_version(admin, "support", {})
    developer = who(ids["acme"], "dev", Role.DEVELOPER)
    with pytest.raises(PermissionDenied, match="prompts:read_plaintext"):
        await sets.request_export(developer, "support", 1, {"format": "openai"})
    none = await sets.request_export(developer, "support", 1, {"format": "openai", "system": "none"})
    lines = jsonl(await content(files, admin, none["file_id"]))
    assert not any(m["role"] == "system" for line in lines for m in line["messages"])
    replaced = await sets.request_export(
        developer, "support", 1, {"format": "openai", "system": "replace", "system_prompt": "Be kind."}
    )
    lines = jsonl(await content(files, admin, replaced["file_id"]))
    assert all(
        [m for m in line["messages"] if m["role"] == "system"] == [{"role": "system", "content": "Be kind."}]
        for line in lines
    )
    with pytest.raises(InvalidRequest, match="system_prompt"):
        await sets.request_export(developer, "support", 1, {"format": "openai", "system": "replace"})
    with pytest.raises(InvalidRequest, match="repairs"):
        await sets.request_export(developer, "support", 1, {"format": "openai", "repairs": ["merge_consecutive"]})


async def test_anthropic_and_bedrock_exports_follow_the_bedrock_rules_with_explicit_repairs(
    database: Database, files: FileService, tmp_path: Path
) -> None:
    _ids, admin = await _reviewed(database)
    sets = datasets(database, files, tmp_path)
    await sets.build_version(admin, "support", {})
    for fmt, schema_2024 in (("anthropic", False), ("bedrock-conversation", True)):
        strict = await sets.request_export(admin, "support", 1, {"format": fmt})
        assert strict["report"]["errors"] == {"tool_turns": 2} and strict["lines"] == 11  # the tool example
        repaired = await sets.request_export(
            admin, "support", 1, {"format": fmt, "repairs": ["drop_tool_turns", "merge_consecutive"]}
        )
        assert repaired["lines"] == 12
        assert repaired["report"]["repairs"] == {"drop_tool_turns": 2, "merge_consecutive": 1}
        lines = jsonl(await content(files, admin, repaired["file_id"]))
        assert all(bedrock_ok(line, schema_2024) for line in lines)
        text = "You are Acme's support agent.\n\nBe brief."
        assert lines[1]["system"] == ([{"text": text}] if schema_2024 else text)
        assert lines[1]["messages"][0]["role"] == "user"


async def _seed_version(db: Database, tenant_id: str, examples: list[Any], kind: str = "sft") -> None:
    async with db.transaction() as session:
        dataset = Dataset(tenant_id=tenant_id, name="seeded", created_by="test")
        session.add(dataset)
        await session.flush()
        version = DatasetVersion(
            tenant_id=tenant_id, dataset_id=dataset.id, version=1, kind=kind, manifest={"counts": {}},
            example_count=len(examples), created_by="test",
        )  # fmt: skip
        session.add(version)
        await session.flush()
        session.add_all(
            DatasetExample(
                version_id=version.id, position=i, interaction_id=f"seed-{i}", example=orjson.dumps(e).decode()
            )
            for i, e in enumerate(examples)
        )


async def test_seeded_bad_rows_give_exactly_the_expected_error_counts(
    database: Database, files: FileService, tmp_path: Path
) -> None:
    ids = await tenants(database, "acme")
    admin = who(ids["acme"], "admin", Role.ADMIN)
    good = {"messages": [{"role": "user", "content": "Hi"}], "answer": "Hello."}
    bad = [
        {"messages": "not a list", "answer": "x"},  # missing_messages_list
        {"messages": [], "answer": "x"},  # only the answer: fine for OpenAI (a warning: no user message)
        {"messages": [{"role": "narrator", "content": "Once"}], "answer": "x"},  # unrecognized_role
        {"messages": [{"role": "user"}], "answer": "x"},  # message_missing_key + missing_content
        {"messages": [{"role": "user", "content": "Hi", "cache_control": {}}], "answer": "x"},  # unrecognized key
        {"messages": [{"role": "user", "content": ""}], "answer": "x"},  # missing_content
        {"messages": [{"role": "user", "content": "Hi"}], "answer": None},  # missing_content (the answer)
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "user", "content": "Again"}], "answer": "x"},
    ]
    await _seed_version(database, ids["acme"], [good] * 10 + bad)
    sets = datasets(database, files, tmp_path)
    export = await sets.request_export(admin, "seeded", 1, {"format": "openai", "system": "none"})
    report = export["report"]
    assert report["errors"] == {
        "message_missing_key": 1, "message_unrecognized_key": 1, "missing_content": 3, "missing_messages_list": 1,
        "unrecognized_role": 1,
    }  # fmt: skip
    assert report["rejected"] == 6 and export["lines"] == 12 and report["warnings"]["missing_user_message"] == 1
    assert cookbook_format_errors(jsonl(await content(files, admin, export["file_id"]))) == {}
    # The same rows in the conversation format: named Bedrock errors, or an explicit repair.
    strict = await sets.request_export(admin, "seeded", 1, {"format": "anthropic", "system": "none"})
    assert strict["report"]["errors"] == {
        "empty_content": 1, "first_not_user": 1, "invalid_content": 2, "missing_messages": 1, "not_alternating": 1,
        "too_few_messages": 1, "unknown_role": 1,
    }  # fmt: skip
    assert strict["report"]["rejected"] == 7 and strict["lines"] == 11  # the cache_control row is fine here
    merged = await sets.request_export(
        admin, "seeded", 1, {"format": "anthropic", "system": "none", "repairs": ["merge_consecutive"]}
    )
    assert merged["report"]["repairs"] == {"merge_consecutive": 1} and merged["lines"] == strict["lines"] + 1
    assert all(bedrock_ok(line, False) for line in jsonl(await content(files, admin, merged["file_id"])))


async def test_openai_minimum_of_ten_examples_is_enforced(
    database: Database, files: FileService, tmp_path: Path
) -> None:
    ids = await tenants(database, "acme")
    admin = who(ids["acme"], "admin", Role.ADMIN)
    await _seed_version(database, ids["acme"], [{"messages": [{"role": "user", "content": "Hi"}], "answer": "Yo"}] * 9)
    sets = datasets(database, files, tmp_path)
    with pytest.raises(InvalidRequest, match="at least 10") as caught:
        await sets.request_export(admin, "seeded", 1, {"format": "openai"})
    assert caught.value.code == "too_few_examples"
    failed = (await sets.list_exports(admin, "seeded", 1))[0]
    assert failed["status"] == "failed" and failed["report"]["written"] == 9 and failed["file_id"] is None
    assert (await sets.request_export(admin, "seeded", 1, {"format": "anthropic"}))["lines"] == 9


async def test_preference_pairs_export_as_openai_dpo(database: Database, files: FileService, tmp_path: Path) -> None:
    ids = await tenants(database, "acme")
    rows = []
    for i in range(16):
        question = [{"role": "user", "content": f"Question {i}?"}]
        rows.append(interaction(ids["acme"], 2 * i, request_messages=question, response_text=f"Short {i}."))
        rows.append(interaction(ids["acme"], 2 * i + 1, request_messages=question, response_text=f"Long answer {i}."))
    await add_interactions(database, rows)
    reviews = service(database)
    admin = who(ids["acme"], "admin", Role.ADMIN)
    batch = await reviews.prepare(admin, {"kind": "pairwise", "reviewers_per_item": 2})
    assert batch["item_count"] == 16 and batch["purpose"] == "preference"

    def prefer(index: int, item: dict[str, Any]) -> dict[str, Any]:
        assert item["interaction"]["messages"] == item["pair"]["messages"]  # one input, two answers
        return {"preferred": "a" if index == 1 and item["position"] % 4 == 0 else "b"}

    await review_all(reviews, batch["id"], [who(ids["acme"], "ann"), who(ids["acme"], "bob")], prefer)
    agreement = await reviews.agreement(admin, batch["id"])
    assert agreement["preference"]["items"] == 16 and agreement["first_preferred"]["passed"] == 4
    sets = datasets(database, files, tmp_path)
    version = await sets.build_version(admin, "prefs", {"kind": "preference"})
    assert version["example_count"] == 12  # the 4 items split 1-1 have no majority
    with pytest.raises(InvalidRequest, match="needs a sft dataset"):
        await sets.request_export(admin, "prefs", 1, {"format": "openai"})
    export = await sets.request_export(admin, "prefs", 1, {"format": "openai-dpo"})
    lines = jsonl(await content(files, admin, export["file_id"]))
    assert len(lines) == 12 and all(dpo_ok(line) for line in lines)
    assert all(line["preferred_output"][0]["content"].startswith("Long answer") for line in lines)
    assert all(line["non_preferred_output"][0]["content"].startswith("Short") for line in lines)


async def test_another_tenant_sees_no_dataset(database: Database, files: FileService, tmp_path: Path) -> None:
    ids, admin = await _reviewed(database)
    sets = datasets(database, files, tmp_path)
    await sets.build_version(admin, "support", {})
    export = await sets.request_export(admin, "support", 1, {"format": "openai"})
    carl = who(ids["globex"], "carl", Role.ADMIN)
    assert await sets.list_datasets(carl) == []
    for call in (
        sets.get_dataset(carl, "support"),
        sets.get_version(carl, "support", 1),
        sets.request_export(carl, "support", 1, {"format": "openai"}),
        sets.get_export(carl, export["id"]),
        sets.download(carl, export["id"]),
    ):
        with pytest.raises(NotFound):
            await call
    with pytest.raises(InvalidRequest, match="no reviewed item"):
        await sets.build_version(carl, "support", {})
