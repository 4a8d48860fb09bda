"""/v1/knowledge end to end (in process, auth on), on SQLite and PostgreSQL: collections,
documents (JSON and multipart), delete by id and by filter, search; roles; the 400 / 404 / 409 /
413 / 415 answers; and tenant isolation on every route."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

from tests.knowledge.pdf_fixture import encrypted, pdf_document
from tests.knowledge.routes_support import COLLECTIONS, MAX_DOCUMENT_BYTES, KnowledgeEnv, error_of
from tests.knowledge.routes_support import kenv as kenv

DATA = Path(__file__).parent / "data"
TEXT = "Refunds are paid within fourteen days of the request. The finance desk approves each one."


def docs_path(collection: str, rest: str = "") -> str:
    return f"{COLLECTIONS}/{collection}/documents{rest}"


async def test_collections_create_list_get_delete(kenv: KnowledgeEnv) -> None:
    created = await kenv.collection("ann", "handbook", description="Staff", chunk_size=64, metadata={"team": "ops"})
    assert created["object"] == "knowledge.collection" and created["name"] == "handbook"
    assert (created["chunk_size"], created["description"], created["metadata"]) == (64, "Staff", {"team": "ops"})
    assert created["documents"] == 0 and created["index_version"] == 0
    error_of(await kenv.post("admin", COLLECTIONS, {"name": "handbook"}), 409)  # same tenant, same name
    await kenv.collection("admin", "another")

    listing = (await kenv.get("svc", COLLECTIONS)).json()
    assert listing["object"] == "list" and [c["name"] for c in listing["data"]] == ["another", "handbook"]
    assert listing["has_more"] is False
    by_name = (await kenv.get("ann", f"{COLLECTIONS}/handbook")).json()
    by_id = (await kenv.get("ann", f"{COLLECTIONS}/{created['id']}")).json()
    assert by_name == by_id and by_name["index"] == {"chunks": 0, "keyword": 0, "vectors": 0}

    deleted = await kenv.delete("bob", f"{COLLECTIONS}/handbook")
    assert deleted.json() == {"object": "knowledge.collection.deleted", "id": created["id"], "name": "handbook",
                              "deleted": True}  # fmt: skip
    error_of(await kenv.get("ann", f"{COLLECTIONS}/handbook"), 404)
    error_of(await kenv.delete("ann", f"{COLLECTIONS}/handbook"), 404)
    assert [c["name"] for c in (await kenv.get("ann", COLLECTIONS)).json()["data"]] == ["another"]


async def test_roles(kenv: KnowledgeEnv) -> None:
    """Admin and developer manage collections; the service key (and any models:call key) reads
    and searches; the viewer does neither."""
    await kenv.collection("admin", "kb")
    assert (await kenv.post("ann", docs_path("kb"), {"id": "a", "text": TEXT})).status_code == 200
    for who in ("svc", "viewer"):
        assert error_of(await kenv.post(who, COLLECTIONS, {"name": f"by-{who}"}), 403)["code"] == "permission_denied"
        error_of(await kenv.post(who, docs_path("kb"), {"id": "b", "text": TEXT}), 403)
        error_of(await kenv.delete(who, docs_path("kb", "/a")), 403)
        error_of(await kenv.post(who, docs_path("kb", "/delete"), {"filter": {"x": 1}}), 403)
        error_of(await kenv.delete(who, f"{COLLECTIONS}/kb"), 403)
    search = {"query": "refunds", "collections": ["kb"], "mode": "bm25"}
    assert (await kenv.post("svc", "/v1/knowledge/search", search)).json()["data"][0]["provenance"]["document"] == "a"
    assert (await kenv.get("svc", docs_path("kb", "/a"))).status_code == 200
    error_of(await kenv.post("viewer", "/v1/knowledge/search", search), 403)
    error_of(await kenv.get("viewer", COLLECTIONS), 403)
    error_of(await kenv.client.get(COLLECTIONS), 401)


async def test_json_documents_ingest_list_get_and_delete(kenv: KnowledgeEnv) -> None:
    await kenv.collection("ann", "kb")
    first = await kenv.post(
        "ann", docs_path("kb"), {"id": "refunds", "text": TEXT, "title": "Refunds", "metadata": {"lang": "en"}}
    )
    assert first.status_code == 200, first.text
    [result] = first.json()["results"]
    assert result["status"] == "created" and result["chunks"] == 1 and result["embedded"] == 1
    embedded = kenv.embedder.texts
    again = (await kenv.post("ann", docs_path("kb"), {"id": "refunds", "text": TEXT, "title": "Refunds",
                                                      "metadata": {"lang": "en"}})).json()  # fmt: skip
    assert again["results"][0]["status"] == "unchanged" and kenv.embedder.texts == embedded

    listed = await kenv.post(
        "bob",
        docs_path("kb"),
        [
            {"uri": "https://docs.test/a.md", "content": "# Alpha\n\nAlpha team notes.", "metadata": {"lang": "de"}},
            {"id": "html-page", "text": "<p>Beta <b>bold</b></p><script>x()</script>", "format": "html"},
            {"id": "pdf", "content_base64": base64.b64encode(pdf_document([["Gamma page."]])).decode()},
        ],
    )
    assert listed.status_code == 200, listed.text
    assert [r["status"] for r in listed.json()["results"]] == ["created"] * 3

    page1 = (await kenv.get("svc", docs_path("kb"), params={"limit": 2})).json()
    assert [d["id"] for d in page1["data"]] == ["html-page", "https://docs.test/a.md"] and page1["has_more"]
    page2 = (await kenv.get("svc", docs_path("kb"), params={"limit": 2, "after": page1["last_id"]})).json()
    assert [d["id"] for d in page2["data"]] == ["pdf", "refunds"] and not page2["has_more"]
    formats = {d["id"]: d["format"] for d in page1["data"] + page2["data"]}
    assert formats == {"html-page": "html", "https://docs.test/a.md": "markdown", "pdf": "pdf", "refunds": "text"}

    document = (await kenv.get("ann", docs_path("kb", "/refunds"))).json()
    assert (document["title"], document["metadata"], document["version"]) == ("Refunds", {"lang": "en"}, 1)
    assert (await kenv.get("ann", docs_path("kb", "/" + document["document_id"]))).json() == document
    # A uri with slashes is a key too.
    assert (await kenv.get("ann", docs_path("kb", "/https://docs.test/a.md"))).json()["title"] == "Alpha"
    collection = (await kenv.get("ann", f"{COLLECTIONS}/kb")).json()
    assert collection["documents"] == 4
    assert collection["index"]["chunks"] == collection["index"]["keyword"] == collection["index"]["vectors"] >= 4

    gone = await kenv.delete("ann", docs_path("kb", "/refunds"))
    assert gone.json() == {"object": "knowledge.document.deleted", "id": "refunds", "deleted": True}
    error_of(await kenv.get("ann", docs_path("kb", "/refunds")), 404)
    error_of(await kenv.delete("ann", docs_path("kb", "/refunds")), 404)
    search = {"query": "refunds finance desk", "collections": ["kb"], "mode": "bm25"}
    assert all(
        h["provenance"]["document"] != "refunds"
        for h in (await kenv.post("ann", "/v1/knowledge/search", search)).json()["data"]
    )


async def test_delete_by_filter(kenv: KnowledgeEnv) -> None:
    await kenv.collection("ann", "kb")
    body = [{"id": f"d{i}", "text": f"Document {i} about shipping.", "metadata": {"lang": lang}}
            for i, lang in enumerate(["en", "en", "fr", "de"])]  # fmt: skip
    assert (await kenv.post("ann", docs_path("kb"), body)).status_code == 200
    deleted = (await kenv.post("ann", docs_path("kb", "/delete"), {"filter": {"lang": {"$in": ["en", "fr"]}}})).json()
    assert deleted == {"object": "knowledge.documents.deleted", "deleted": 3, "filter": {"lang": {"$in": ["en", "fr"]}}}
    assert [d["id"] for d in (await kenv.get("ann", docs_path("kb"))).json()["data"]] == ["d3"]
    counts = (await kenv.get("ann", f"{COLLECTIONS}/kb")).json()["index"]
    assert counts["chunks"] == counts["keyword"] == counts["vectors"] == 1
    again = await kenv.post("ann", docs_path("kb", "/delete"), {"filter": {"lang": "en"}})
    assert again.json()["deleted"] == 0
    bad_filters: list[Any] = [{"filter": {}}, {}, {"filter": {"lang": {"$regex": "e"}}}, {"filter": "lang"}]
    for bad in [*bad_filters, {"where": {"a": 1}}]:
        error_of(await kenv.post("ann", docs_path("kb", "/delete"), bad), 400)


async def test_multipart_uploads_detect_the_format(kenv: KnowledgeEnv) -> None:
    await kenv.collection("ann", "files")
    for name in ("notes.txt", "guide.md", "page.html", "survey.pdf"):
        response = await kenv.upload("ann", "files", name, (DATA / name).read_bytes(), metadata='{"source": "disk"}')
        assert response.status_code == 200, response.text
        assert response.json()["results"][0]["status"] == "created"
    named = await kenv.upload("ann", "files", "x.bin", b"Plain words.", "application/octet-stream",
                              id="explicit", format="text", title="Named")  # fmt: skip
    assert named.status_code == 200, named.text
    documents = {d["id"]: d for d in (await kenv.get("ann", docs_path("files"))).json()["data"]}
    assert {key: d["format"] for key, d in documents.items()} == {
        "notes.txt": "text", "guide.md": "markdown", "page.html": "html", "survey.pdf": "pdf", "explicit": "text",
    }  # fmt: skip
    assert documents["page.html"]["title"] == "Lighthouse maintenance"
    assert documents["explicit"]["title"] == "Named" and documents["notes.txt"]["metadata"] == {"source": "disk"}
    search = {"query": "seal pups outer sandbank", "collections": ["files"], "k": 1}
    [hit] = (await kenv.post("ann", "/v1/knowledge/search", search)).json()["data"]
    assert hit["provenance"]["document"] == "survey.pdf" and hit["provenance"]["page"] == 2


async def test_bad_input_is_a_clear_4xx(kenv: KnowledgeEnv) -> None:
    await kenv.collection("ann", "kb")
    docs = docs_path("kb")
    # 400
    bodies: list[Any] = [
        {"text": TEXT},  # no id or uri
        {"id": "a"},  # no content
        {"id": "a", "text": TEXT, "content": TEXT},  # two contents
        {"id": "a", "text": ""},
        {"id": "a", "text": 5},
        {"id": "a", "text": TEXT, "metadata": ["x"]},
        {"id": "a", "text": TEXT, "colour": "red"},
        {"id": "a", "content_base64": "%%%"},
        [],
        [{"id": "a", "text": TEXT}, {"id": "a", "text": TEXT}],
        {"documents": "a"},
        # NUL: SQLite would store it, PostgreSQL refuses it: refused on both.
        {"id": "a\x00", "text": TEXT},
        {"id": "a", "text": "binary\x00text"},
    ]
    for body in bodies:
        error_of(await kenv.post("ann", docs, body), 400)
    error_of(await kenv.upload("ann", "kb", "n" * 600 + ".txt", b"Long name."), 400)  # a key over 512 characters
    error_of(await kenv.upload("ann", "kb", "a.txt", b"Text.", id="i" * 513), 400)
    error_of(await kenv.upload("ann", "kb", "a.txt", b"Text.", metadata="[1]"), 400)
    error_of(await kenv.upload("ann", "kb", "a.txt", b"Text.", metadata="{bad"), 400)
    error_of(await kenv.upload("ann", "kb", "a.txt", b""), 400)
    assert "NUL" in error_of(await kenv.upload("ann", "kb", "bin.txt", b"\x00\x01\x02"), 400)["message"]
    error_of(await kenv.get("ann", docs_path("kb", "/a%00b")), 404)
    error_of(await kenv.get("ann", f"{COLLECTIONS}/kb%00"), 404)
    error_of(await kenv.get("ann", docs, params={"after": "a\x00"}), 400)
    error_of(await kenv.client.post(docs, headers={**kenv.auth("ann"), "content-type": "application/json"},
                                    content=b"{not json"), 400)  # fmt: skip
    collections: list[Any] = [{}, {"name": ""}, {"name": "a/b"}, {"name": "x" * 129}, [1]]
    for body in [*collections, {"name": "kb2", "chunk_size": 9999}, {"name": "kb2", "chunk_size": "big"}]:
        error_of(await kenv.post("ann", COLLECTIONS, body), 400)
    error_of(await kenv.get("ann", docs, params={"limit": 0}), 400)
    # An encrypted or damaged PDF.
    pdf = pdf_document([["Secret page."]])
    locked = error_of(await kenv.upload("ann", "kb", "locked.pdf", encrypted(pdf)), 400)
    assert locked["code"] == "encrypted_pdf" and "encrypted" in locked["message"]
    assert error_of(await kenv.upload("ann", "kb", "broken.pdf", pdf[:100]), 400)["code"] == "invalid_pdf"
    damaged = {"id": "b", "content_base64": base64.b64encode(b"%PDF-1.4 junk").decode(), "format": "pdf"}
    assert error_of(await kenv.post("ann", docs, damaged), 400)["code"] == "invalid_pdf"
    # 413: one document over knowledge.max_document_bytes (JSON, multipart).
    big = "word " * (MAX_DOCUMENT_BYTES // 5 + 10)
    assert error_of(await kenv.post("ann", docs, {"id": "big", "text": big}), 413)["code"] == "request_too_large"
    error_of(await kenv.upload("ann", "kb", "big.txt", big.encode()), 413)
    # 415: an unsupported format, declared or detected, or a body that is neither JSON nor a form.
    assert error_of(await kenv.post("ann", docs, {"id": "a", "text": TEXT, "format": "docx"}), 415)["code"] == (
        "unsupported_format"
    )
    error_of(await kenv.upload("ann", "kb", "sheet.xlsx", b"PK\x03\x04", "application/octet-stream"), 415)
    error_of(await kenv.upload("ann", "kb", "data", b"a,b", "text/csv"), 415)
    error_of(await kenv.client.post(docs, headers={**kenv.auth("ann"), "content-type": "text/plain"},
                                    content=b"hello"), 415)  # fmt: skip
    # 404: an unknown collection or document.
    error_of(await kenv.post("ann", docs_path("nope"), {"id": "a", "text": TEXT}), 404)
    error_of(await kenv.get("ann", docs_path("kb", "/nope")), 404)
    # Nothing was stored by any refused request.
    assert (await kenv.get("ann", docs)).json()["data"] == []


async def test_search(kenv: KnowledgeEnv) -> None:
    await kenv.collection("ann", "kb", chunk_size=32, chunk_overlap=0)
    await kenv.collection("ann", "other")
    body = [
        {"id": "refunds", "text": TEXT, "metadata": {"lang": "en"}},
        {"id": "shipping", "text": "Parcels ship on Mondays from the north warehouse.", "metadata": {"lang": "en"}},
        {"id": "remboursement", "text": "Refunds: le remboursement est fait en quatorze jours.",
         "metadata": {"lang": "fr"}},
    ]  # fmt: skip
    assert (await kenv.post("ann", docs_path("kb"), body)).status_code == 200
    await kenv.post("ann", docs_path("other"), {"id": "elsewhere", "text": "Refunds refunds refunds in the other one."})
    search = "/v1/knowledge/search"
    for mode in ("bm25", "dense", "hybrid"):
        answer = (await kenv.post("svc", search, {"query": "refunds finance desk", "collections": ["kb"],
                                                  "mode": mode, "k": 2})).json()  # fmt: skip
        assert answer["mode"] == mode and answer["data"][0]["provenance"]["document"] == "refunds", answer
        hit = answer["data"][0]
        provenance = hit["provenance"]
        assert hit["rank"] == 1 and hit["text"] in TEXT and provenance["collection"] == "kb"
        assert TEXT[provenance["start"] : provenance["end"]] == hit["text"]
        for field in ("collection_id", "document_id", "chunk_id", "content_hash", "document_version",
                      "index_version", "scores", "cosine", "page", "uri"):  # fmt: skip
            assert field in provenance
        assert set(provenance["scores"]) == {"bm25": {"bm25"}, "dense": {"dense"}, "hybrid": {"bm25", "dense"}}[mode]
    filtered = (await kenv.post("ann", search, {"query": "refunds", "collections": ["kb"], "mode": "bm25",
                                                "filters": {"lang": "fr"}})).json()  # fmt: skip
    assert [h["provenance"]["document"] for h in filtered["data"]] == ["remboursement"]
    both = (await kenv.post("ann", search, {"query": "refunds", "collections": ["kb", "other"], "mode": "bm25",
                                            "k": 10})).json()  # fmt: skip
    assert {h["provenance"]["collection"] for h in both["data"]} == {"kb", "other"}
    one = (await kenv.post("ann", search, {"query": "refunds", "collection": "other", "mode": "bm25"})).json()
    assert [h["provenance"]["document"] for h in one["data"]] == ["elsewhere"]
    # A threshold above any cosine leaves nothing; -1 keeps everything; MMR with lambda 1 is plain ranking.
    assert (await kenv.post("ann", search, {"query": "refunds", "collections": ["kb"], "threshold": 1.01})).json()[
        "data"
    ] == []
    plain = await kenv.post("ann", search, {"query": "refunds", "collections": ["kb"], "mode": "dense", "k": 3})
    mmr = await kenv.post("ann", search, {"query": "refunds", "collections": ["kb"], "mode": "dense", "k": 3,
                                          "mmr": {"lambda": 1.0}, "threshold": -1})  # fmt: skip
    assert [h["provenance"]["chunk_id"] for h in plain.json()["data"]] == [
        h["provenance"]["chunk_id"] for h in mmr.json()["data"]
    ]
    for bad in (
        {"collections": ["kb"]},
        {"query": "", "collections": ["kb"]},
        {"query": "x"},
        {"query": "x", "collections": "kb"},
        {"query": "x", "collections": ["kb"], "mode": "fuzzy"},
        {"query": "x", "collections": ["kb"], "k": 0},
        {"query": "x", "collections": ["kb"], "k": "ten"},
        {"query": "x", "collections": ["kb"], "weights": [1]},
        {"query": "x", "collections": ["kb"], "mmr_lambda": 2},
        {"query": "x", "collections": ["kb"], "filters": {"lang": {"$gt": 1}}},
        {"query": "x", "collections": ["kb"], "nonsense": True},
        {"query": "x", "collections": ["kb"], "rrf_k": 0},
        {"query": "x\x00", "collections": ["kb"]},
    ):
        error_of(await kenv.post("ann", search, bad), 400)
    error_of(await kenv.post("ann", search, {"query": "x", "collections": ["kb", "missing"]}), 404)


async def test_tenant_isolation_on_every_route(kenv: KnowledgeEnv) -> None:
    """carl (globex) sees nothing of acme's: each route answers 404 as for a missing collection,
    and a same-named collection of his own is a different one."""
    created = await kenv.collection("ann", "kb")
    await kenv.post("ann", docs_path("kb"), {"id": "secret", "text": TEXT, "metadata": {"lang": "en"}})
    job = await kenv.post("ann", docs_path("kb"), {"documents": [{"id": "j", "text": TEXT}], "background": True})
    assert job.status_code == 202
    job_id = job.json()["id"]
    for ref in ("kb", created["id"]):
        error_of(await kenv.get("carl", f"{COLLECTIONS}/{ref}"), 404)
        error_of(await kenv.delete("carl", f"{COLLECTIONS}/{ref}"), 404)
        error_of(await kenv.get("carl", docs_path(ref)), 404)
        error_of(await kenv.post("carl", docs_path(ref), {"id": "x", "text": TEXT}), 404)
        error_of(await kenv.get("carl", docs_path(ref, "/secret")), 404)
        error_of(await kenv.delete("carl", docs_path(ref, "/secret")), 404)
        error_of(await kenv.post("carl", docs_path(ref, "/delete"), {"filter": {"lang": "en"}}), 404)
        search = {"query": "refunds", "collections": [ref], "mode": "bm25"}
        error_of(await kenv.post("carl", "/v1/knowledge/search", search), 404)
    error_of(await kenv.get("carl", f"/v1/knowledge/jobs/{job_id}"), 404)
    error_of(await kenv.post("carl", f"/v1/knowledge/jobs/{job_id}/cancel"), 404)
    assert (await kenv.get("carl", COLLECTIONS)).json()["data"] == []

    mine = await kenv.collection("carl", "kb")  # the name is free in his tenant
    assert mine["id"] != created["id"]
    await kenv.post("carl", docs_path("kb"), {"id": "his", "text": TEXT})
    hits = (await kenv.post("carl", "/v1/knowledge/search", {"query": "refunds", "collections": ["kb"]})).json()
    assert {h["provenance"]["document"] for h in hits["data"]} == {"his"}
    # acme's collection is untouched by all of the above.
    await kenv.finished_job("ann", job_id)
    assert {d["id"] for d in (await kenv.get("ann", docs_path("kb"))).json()["data"]} == {"secret", "j"}
