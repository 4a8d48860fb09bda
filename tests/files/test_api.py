"""/v1/files end to end (in process, auth on) with the unmodified OpenAI SDK and raw HTTP: upload,
list, retrieve, content and delete; the 400 / 404 / 413 answers; who sees which file. Every file
object, list and error body is held against OpenAI's own OpenAPI document."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from bastion.errors import NotFound
from bastion.files.service import Owner, owner_of
from tests.files.support import MAX_BYTES, FilesEnv, batch_jsonl, batch_line, jsonl
from tests.support.openai_spec import validate, validate_response


def _error(body: dict[str, Any]) -> dict[str, Any]:
    validate("ErrorResponse", body)
    error: dict[str, Any] = body["error"]
    return error


def _dump(model: Any) -> dict[str, Any]:
    dumped: dict[str, Any] = model.model_dump(mode="json", exclude_unset=True, by_alias=True)
    return dumped


async def test_upload_retrieve_content_list_and_delete_through_the_sdk(files_env: FilesEnv) -> None:
    env = files_env
    client = env.openai("ann")
    content = batch_jsonl(3)
    uploaded = await client.files.create(file=("requests.jsonl", content), purpose="batch")
    validate_response("/files", "post", _dump(uploaded))
    assert uploaded.id.startswith("file-") and uploaded.object == "file"
    assert (uploaded.bytes, uploaded.filename, uploaded.purpose, uploaded.status) == (
        len(content),
        "requests.jsonl",
        "batch",
        "processed",
    )
    created = int(env.clock.now.timestamp())
    assert uploaded.created_at == created
    assert uploaded.expires_at == created + 30 * 24 * 3600  # batch files: 30 days unless told otherwise

    fetched = await client.files.retrieve(uploaded.id)
    validate_response("/files/{file_id}", "get", _dump(fetched))
    assert fetched == uploaded
    assert (await client.files.content(uploaded.id)).content == content
    raw = await env.client.get(f"/v1/files/{uploaded.id}/content", headers=env.auth("ann"))
    assert raw.headers["content-type"] == "application/octet-stream"
    assert raw.headers["content-length"] == str(len(content))
    assert raw.headers["content-disposition"] == "attachment; filename*=UTF-8''requests.jsonl"

    listing = await client.files.list()
    validate_response("/files", "get", _dump(listing))
    assert [f.id for f in listing.data] == [uploaded.id]

    (stored,) = env.stored_paths()
    assert stored.name == uploaded.id and stored.read_bytes() == content
    deleted = await client.files.delete(uploaded.id)
    validate_response("/files/{file_id}", "delete", _dump(deleted))
    assert (deleted.id, deleted.object, deleted.deleted) == (uploaded.id, "file", True)
    assert env.stored_paths() == []
    with pytest.raises(openai.NotFoundError) as missing:
        await client.files.retrieve(uploaded.id)
    _error(missing.value.response.json())
    with pytest.raises(openai.NotFoundError):
        await client.files.content(uploaded.id)
    with pytest.raises(openai.NotFoundError):
        await client.files.delete(uploaded.id)
    assert (await client.files.list()).data == []


async def test_user_data_files_and_expiry(files_env: FilesEnv) -> None:
    env = files_env
    client = env.openai("ann")
    kept = await client.files.create(file=("notes.txt", b"any bytes \x00\xff at all"), purpose="user_data")
    assert kept.purpose == "user_data" and kept.expires_at is None
    validate("OpenAIFile", _dump(kept))
    brief = await client.files.create(
        file=("brief.txt", b"an hour"), purpose="user_data", expires_after={"anchor": "created_at", "seconds": 3600}
    )
    assert brief.expires_at == brief.created_at + 3600
    validate("OpenAIFile", _dump(brief))

    env.clock.advance(3600)
    with pytest.raises(openai.NotFoundError):  # expired: gone for clients at once ...
        await client.files.retrieve(brief.id)
    assert [f.id for f in (await client.files.list()).data] == [kept.id]
    assert len(env.stored_paths()) == 2
    assert await env.service.sweep() == 1  # ... and from disk at the next sweep
    assert [path.name for path in env.stored_paths()] == [kept.id]
    assert (await client.files.content(kept.id)).content == b"any bytes \x00\xff at all"

    for bad in ({"anchor": "created_at", "seconds": 60}, {"anchor": "last_active_at", "seconds": 3600}):
        with pytest.raises(openai.BadRequestError) as refused:
            await client.files.create(file=("x.txt", b"x"), purpose="user_data", expires_after=bad)  # type: ignore[arg-type]
        assert _error(refused.value.response.json())["param"].startswith("expires_after")


async def test_list_filters_pages_and_orders(files_env: FilesEnv) -> None:
    env = files_env
    client = env.openai("ann")
    ids = []
    for i in range(3):
        ids.append((await client.files.create(file=(f"b{i}.jsonl", batch_jsonl(1)), purpose="batch")).id)
        env.clock.advance(1)
    notes = (await client.files.create(file=("n.txt", b"n"), purpose="user_data")).id

    assert [f.id for f in (await client.files.list()).data] == [notes, *reversed(ids)]  # newest first
    assert [f.id for f in (await client.files.list(purpose="batch", order="asc")).data] == ids
    assert [f.id for f in (await client.files.list(purpose="user_data")).data] == [notes]
    first = await client.files.list(purpose="batch", order="asc", limit=2)
    assert [f.id for f in first.data] == ids[:2] and first.has_more
    validate_response("/files", "get", _dump(first))
    rest = await client.files.list(purpose="batch", order="asc", limit=2, after=ids[1])
    assert [f.id for f in rest.data] == ids[2:] and not rest.has_more
    # The SDK's auto-pagination follows `after` through every page.
    assert [f.id async for f in client.files.list(limit=1)] == [notes, *reversed(ids)]

    for query, param in (("limit=0", "limit"), ("limit=x", "limit"), ("order=up", "order"), ("after=file-x", "after")):
        answer = await env.client.get(f"/v1/files?{query}", headers=env.auth("ann"))
        assert answer.status_code == 400 and _error(answer.json())["param"] == param, query


async def test_files_are_their_creators_and_their_tenant_admins(files_env: FilesEnv) -> None:
    env = files_env
    anns = await env.openai("ann").files.create(file=("a.jsonl", batch_jsonl(1)), purpose="batch")
    svcs = await env.openai("svc").files.create(file=("s.jsonl", batch_jsonl(1)), purpose="batch")

    # Ann's other key is Ann: her files are hers whichever key she uses.
    assert [f.id for f in (await env.openai("ann2").files.list()).data] == [anns.id]
    assert (await env.openai("ann2").files.content(anns.id)).content == batch_jsonl(1)
    # A service key without a user owns what it uploaded.
    assert [f.id for f in (await env.openai("svc").files.list()).data] == [svcs.id]
    # The tenant's admin sees the tenant's files.
    assert {f.id for f in (await env.openai("admin").files.list()).data} == {anns.id, svcs.id}
    assert (await env.openai("admin").files.retrieve(svcs.id)).id == svcs.id

    # Another user of the tenant, and another tenant, get the 404 of an unknown id.
    for who in ("bob", "carl"):
        client = env.openai(who)
        assert (await client.files.list()).data == []
        for call in (client.files.retrieve, client.files.content, client.files.delete):
            with pytest.raises(openai.NotFoundError) as hidden:
                await call(anns.id)
            assert _error(hidden.value.response.json())["code"] == "not_found"
        answer = await env.client.get(f"/v1/files?after={anns.id}", headers=env.auth(who))
        assert answer.status_code == 400  # a cursor they cannot see is no cursor
    assert (await env.openai("ann").files.retrieve(anns.id)).id == anns.id  # still there
    # An admin sees no further than the tenant.
    carls = await env.openai("carl").files.create(file=("c.jsonl", batch_jsonl(1)), purpose="batch")
    assert carls.id not in {f.id for f in (await env.openai("admin").files.list()).data}
    with pytest.raises(openai.NotFoundError):
        await env.openai("admin").files.content(carls.id)

    # A viewer may not use files at all; no credentials, no files.
    with pytest.raises(openai.PermissionDeniedError):
        await env.openai("viewer").files.list()
    assert (await env.client.get("/v1/files")).status_code == 401
    assert (await env.client.post("/v1/files", files={"file": ("a", b"a")})).status_code == 401


async def test_malformed_batch_input_is_a_400_naming_its_lines(files_env: FilesEnv) -> None:
    env = files_env
    content = jsonl(
        [
            batch_line("a"),
            b"{not json",
            batch_line("a"),
            batch_line("b", method="GET"),
            batch_line("c", url="/v1/completions"),
            {"custom_id": "d", "method": "POST", "url": "/v1/embeddings"},
            b"",
            b"[1, 2]",
            batch_line("e"),
        ]
    )
    with pytest.raises(openai.BadRequestError) as refused:
        await env.openai("ann").files.create(file=("bad.jsonl", content), purpose="batch")
    error = _error(refused.value.response.json())
    assert (error["param"], error["code"], error["type"]) == ("file", "invalid_batch_input", "invalid_request_error")
    message = error["message"]
    assert "line 2: not valid JSON" in message
    assert "line 3: duplicate custom_id 'a' (first on line 1)" in message
    assert "line 4: method must be POST" in message
    assert "line 5: url must be one of /v1/chat/completions, /v1/embeddings" in message
    assert "line 6: missing body" in message
    assert "line 8: must be a JSON object" in message
    assert "line 9" not in message and "line 7" not in message
    assert env.stored_paths() == [] and (await env.openai("ann").files.list()).data == []

    # user_data files are not read as batch input.
    assert (await env.upload("ann", content, purpose="user_data")).status_code == 200


async def test_a_batch_file_holds_at_most_50000_requests(files_env: FilesEnv) -> None:
    env = files_env
    line = b'{"custom_id":"r%d","method":"POST","url":"/v1/embeddings","body":{"model":"e","input":"x"}}\n'
    full = b"".join(line % i for i in range(50_000))
    assert len(full) < MAX_BYTES
    accepted = await env.upload("ann", full)
    assert accepted.status_code == 200, accepted.text
    refused = await env.upload("ann", full + line % 50_000)
    assert refused.status_code == 400
    assert "line 50001: more than 50,000 requests" in _error(refused.json())["message"]


async def test_oversized_uploads_are_a_413_and_leave_nothing_behind(files_env: FilesEnv) -> None:
    env = files_env
    client = env.openai("ann")
    with pytest.raises(openai.APIStatusError) as refused:
        await client.files.create(file=("big.txt", b"x" * (MAX_BYTES + 1)), purpose="user_data")
    assert refused.value.status_code == 413
    error = _error(refused.value.response.json())
    assert (error["code"], error["param"]) == ("file_too_large", "file")
    assert f"{MAX_BYTES:,} bytes" in error["message"]
    assert env.stored_paths() == [] and (await client.files.list()).data == []
    # Exactly the limit is fine.
    exact = await client.files.create(file=("max.txt", b"x" * MAX_BYTES), purpose="user_data")
    assert exact.bytes == MAX_BYTES


@pytest.mark.parametrize(
    ("purpose", "param", "text"),
    [
        ("fine-tune", "purpose", "'fine-tune' is not served by this gateway; use batch or user_data"),
        ("assistants", "purpose", "'assistants' is not served"),
        ("poetry", "purpose", "purpose must be batch or user_data"),
        ("", "purpose", "purpose is required"),
    ],
)
async def test_purposes_other_than_batch_and_user_data_are_a_400(
    files_env: FilesEnv, purpose: str, param: str, text: str
) -> None:
    answer = await files_env.upload("ann", b"x", purpose=purpose)
    assert answer.status_code == 400
    error = _error(answer.json())
    assert error["param"] == param and text in error["message"]
    assert files_env.stored_paths() == []


async def test_malformed_uploads_are_400s(files_env: FilesEnv) -> None:
    env = files_env
    auth = env.auth("ann")
    cases = {
        "no file": await env.client.post("/v1/files", headers=auth, data={"purpose": "batch"}),
        "empty file": await env.upload("ann", b""),
        "json body": await env.client.post("/v1/files", headers=auth, json={"purpose": "batch"}),
        "two files": await env.client.post(
            "/v1/files", headers=auth, data={"purpose": "user_data"}, files=[("file", b"a"), ("file", b"b")]
        ),
        "cut short": await env.client.post(
            "/v1/files",
            headers={**auth, "content-type": "multipart/form-data; boundary=XyZ"},
            content=b'--XyZ\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n--XyZ\r\nContent-Di',
        ),
        "no purpose": await env.client.post("/v1/files", headers=auth, files={"file": ("a.txt", b"a")}),
    }
    for case, answer in cases.items():
        assert answer.status_code == 400, (case, answer.text)
        _error(answer.json())
    assert env.stored_paths() == []
    # The purpose may also follow the file (the SDKs send it first).
    late = await env.client.post(
        "/v1/files",
        headers={**auth, "content-type": "multipart/form-data; boundary=XyZ"},
        content=b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="../../etc/n\x01.txt"\r\n\r\nhi'
        b'\r\n--XyZ\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nuser_data\r\n--XyZ--\r\n',
    )
    assert late.status_code == 200, late.text
    assert late.json()["filename"] == "n.txt"  # no directories, no control characters
    validate("OpenAIFile", late.json())


async def test_unknown_ids_are_404s(files_env: FilesEnv) -> None:
    env = files_env
    for path in ("/v1/files/file-0123", "/v1/files/file-" + "0" * 32 + "/content", "/v1/files/..%2F..%2Fmaster.key"):
        answer = await env.client.get(path, headers=env.auth("ann"))
        assert answer.status_code == 404, path
        _error(answer.json())
    gone = await env.client.delete("/v1/files/file-" + "f" * 32, headers=env.auth("ann"))
    assert gone.status_code == 404


async def test_what_surrounds_the_file_counts_toward_the_limit(files_env: FilesEnv) -> None:
    env = files_env
    form = b'--XyZ\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nuser_data\r\n--XyZ\r\n'
    form += b'Content-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\nsmall\r\n--XyZ--\r\n'

    async def endless_epilogue() -> Any:  # no Content-Length: found too large on the way
        yield form
        for _ in range(MAX_BYTES // 65536 + 32):
            yield b"z" * 65536

    answer = await env.client.post(
        "/v1/files",
        headers={**env.auth("ann"), "content-type": "multipart/form-data; boundary=XyZ"},
        content=endless_epilogue(),
    )
    assert answer.status_code == 413
    assert env.stored_paths() == []


async def test_files_bastion_writes_itself_are_served_to_their_owner(files_env: FilesEnv) -> None:
    """``add_file``: what a batch writes its results with (purpose batch_output)."""
    env = files_env
    ann = await env.gateway.services.authenticator.authenticate({"authorization": f"Bearer {env.keys['ann']}"})
    lines = (b'{"custom_id": "r%d", "response": {"status_code": 200}}\n' % i for i in range(1000))
    stored = await env.service.add_file(owner_of(ann), lines, filename="batch_x_output.jsonl")
    validate("OpenAIFile", stored)
    assert (stored["purpose"], stored["filename"]) == ("batch_output", "batch_x_output.jsonl")
    assert stored["expires_at"] == stored["created_at"] + 30 * 24 * 3600
    client = env.openai("ann2")
    assert [f.id for f in (await client.files.list(purpose="batch_output")).data] == [stored["id"]]
    content = (await client.files.content(stored["id"])).content
    assert content.count(b"\n") == 1000 and content.startswith(b'{"custom_id": "r0"')
    with pytest.raises(openai.NotFoundError):
        await env.openai("bob").files.content(stored["id"])
    # A batch worker reads as the batch's owner, without a request.
    info, handle = await env.service.open_content(owner_of(ann), stored["id"])
    with handle:
        assert info["id"] == stored["id"] and handle.read() == content
    with pytest.raises(NotFound):
        await env.service.open_content(Owner(ann.tenant_id, "user", "someone-else", False), stored["id"])
    with pytest.raises(ValueError):
        await env.service.add_file(owner_of(ann), [b"x"], filename="x", purpose="poetry")
    assert len(env.stored_paths()) == 1  # the refused one left nothing behind


async def test_a_disk_that_refuses_the_upload_is_a_503_that_says_why(files_env: FilesEnv) -> None:
    env = files_env
    tmp = env.service.storage.tmp_dir
    tmp.rmdir()
    tmp.write_bytes(b"")  # where the temporary files go is no directory now (root ignores permissions)
    answer = await env.upload("ann", b"x", purpose="user_data")
    assert answer.status_code == 503
    error = _error(answer.json())
    assert error["code"] == "storage_unavailable" and "cannot store files now" in error["message"]
    tmp.unlink()
    assert (await env.upload("ann", b"x", purpose="user_data")).status_code == 200  # recovers by itself
