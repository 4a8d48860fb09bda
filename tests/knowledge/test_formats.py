"""Document formats, on SQLite and PostgreSQL: each format's fixture (tests/knowledge/data) finds
its own passage at rank 1 (a PDF's hit carries the page the passage is on); HTML loses scripts,
styles, navigation, headers, footers and asides; encrypted and damaged PDFs are clear 400s; format
detection from the declared name, the file name and the content type, and 415 for anything else."""

from __future__ import annotations

from pathlib import Path

import pytest

from bastion.errors import InvalidRequest, UnsupportedMediaType
from bastion.knowledge.extract import detect_format, extractor_for, format_name
from bastion.knowledge.html_text import html_to_text
from bastion.knowledge.model import DocumentInput, Mode, SearchRequest
from bastion.knowledge.service import KnowledgeService
from tests.knowledge.pdf_fixture import encrypted, pdf_document

DATA = Path(__file__).parent / "data"

#: fixture -> (format, a query only its passage answers, words of that passage, page)
FIXTURES: dict[str, tuple[str, str, str, int | None]] = {
    "notes.txt": ("text", "quince trees flowered late after frost", "quince trees on the northern slope", None),
    "guide.md": ("markdown", "zeppelin hangar checklist", "zeppelin hangar checklist is signed", None),
    "page.html": ("html", "keeper polishes the Fresnel lens", "polishes the Fresnel lens every morning", None),
    "survey.pdf": ("pdf", "seal pups outer sandbank August", "Pups on the outer sandbank numbered", 2),
}


async def _ingest_fixtures(service: KnowledgeService, tenant: str) -> None:
    await service.create_collection(tenant, "formats", chunk_size=48, chunk_overlap=8)
    documents = [
        DocumentInput((DATA / name).read_bytes(), uri=name, format=detect_format(None, name), metadata={"file": name})
        for name in FIXTURES
    ]
    results = await service.ingest(tenant, "formats", documents)
    assert [r.status for r in results] == ["created"] * len(FIXTURES), results


@pytest.mark.parametrize("mode", ["bm25", "hybrid"])
async def test_each_formats_fixture_finds_its_own_passage_at_rank_1(
    service: KnowledgeService, tenant: str, mode: Mode
) -> None:
    await _ingest_fixtures(service, tenant)
    for name, (fmt, query, passage, page) in FIXTURES.items():
        hits = await service.search(tenant, SearchRequest(query, ["formats"], k=3, mode=mode))
        top = hits[0]
        assert top.document_key == name, (name, [h.document_key for h in hits])
        assert passage in top.text
        assert top.page == page
        document = await service.get_document(tenant, "formats", name)
        assert document.format == fmt


async def test_pdf_pages_and_offsets_point_into_the_extracted_text(service: KnowledgeService, tenant: str) -> None:
    extracted = extractor_for("pdf").extract((DATA / "survey.pdf").read_bytes())
    assert [number for _start, number in extracted.pages] == [1, 2]
    page_two = extracted.pages[1][0]
    assert extracted.text[page_two:].startswith("Pups on the outer sandbank")
    assert extracted.text[:page_two].rstrip().endswith("Volunteers logged each haul-out site by hand.")
    await _ingest_fixtures(service, tenant)
    hits = await service.search(tenant, SearchRequest("harbour seal count pier", ["formats"], k=1, mode="bm25"))
    assert hits[0].document_key == "survey.pdf" and hits[0].page == 1
    assert extracted.text[hits[0].start : hits[0].end] == hits[0].text


async def test_html_scripts_styles_and_navigation_are_not_indexed(service: KnowledgeService, tenant: str) -> None:
    text, title = html_to_text((DATA / "page.html").read_text())
    assert title == "Lighthouse maintenance"
    for gone in ("marmalade", "font-family", "Tide tables", "Harbour authority home", "cormorant", "webmaster"):
        assert gone not in text
    # Block boundaries become line and paragraph breaks; inline newlines do not.
    assert "The keeper polishes the Fresnel lens every morning and logs the paraffin consumption" in text
    assert "\n\nStorm shutters are closed" in text
    assert "Check the clockwork rotation.\nTrim the wick." in text
    await _ingest_fixtures(service, tenant)
    for word in ("marmalade", "cormorant", "webmaster", "buoy"):
        hits = await service.search(tenant, SearchRequest(word, ["formats"], k=5, mode="bm25"))
        assert all(hit.document_key != "page.html" for hit in hits), word


def test_html_entities_are_decoded_once_and_malformed_markup_still_gives_text() -> None:
    text, title = html_to_text("<title>A &amp; B</title><p>x &amp;lt; y<div>unclosed <b>bold</p>tail")
    assert title == "A & B"
    assert text == "x &lt; y\nunclosed bold\n\ntail"
    assert html_to_text("<h2>Only a heading</h2><p>body</p>") == ("Only a heading\n\nbody", "Only a heading")


async def test_encrypted_and_damaged_pdfs_are_refused_with_a_clear_reason(
    service: KnowledgeService, tenant: str
) -> None:
    good = pdf_document([["A first page of text."], ["A second page."]])
    pdf = extractor_for("pdf")
    with pytest.raises(InvalidRequest) as locked:
        pdf.extract(encrypted(good))
    assert locked.value.status == 400 and locked.value.code == "encrypted_pdf" and "encrypted" in locked.value.message
    for damaged in (good[: len(good) // 2], b"%PDF-1.4\n" + b"\x00garbage" * 20, b"not a pdf at all"):
        with pytest.raises(InvalidRequest) as broken:
            pdf.extract(damaged)
        assert broken.value.status == 400 and broken.value.code == "invalid_pdf"
    with pytest.raises(InvalidRequest, match="no extractable text"):
        pdf.extract(pdf_document([[], []]))
    # Through the service: the refused document is an error result, the others are ingested.
    await service.create_collection(tenant, "pdfs")
    results = await service.ingest(
        tenant,
        "pdfs",
        [
            DocumentInput(encrypted(good), id="locked", format="pdf"),
            DocumentInput(good, id="fine", format="pdf"),
        ],
    )
    assert [(r.status, r.error_code) for r in results] == [("error", "encrypted_pdf"), ("created", None)]


def test_format_detection() -> None:
    assert detect_format("MD") == "markdown" and detect_format("text/html") == "html"
    assert detect_format(None, "Report.PDF", "application/octet-stream") == "pdf"
    assert detect_format(None, "dir/page.htm") == "html"
    assert detect_format(None, "notes", "text/plain; charset=utf-8") == "text"
    assert detect_format(None, "readme.md", "text/plain") == "markdown"  # the extension is more specific
    assert format_name("txt") == "text"
    for declared, filename, content_type in (
        ("docx", None, None),
        (None, "sheet.xlsx", "application/octet-stream"),
        (None, "data", "text/csv"),
        (None, None, None),
    ):
        with pytest.raises(UnsupportedMediaType) as refused:
            detect_format(declared, filename, content_type)
        assert refused.value.status == 415 and refused.value.code == "unsupported_format"
