"""Extractors: a document's bytes -> the text chunks point into, with its pages.

Chunk offsets index the *extracted* text (kept in the document row), so citations can quote the
exact passage. Plain text and Markdown keep their source text unchanged (so offsets are offsets
into the file too); HTML loses its scripts, styles and navigation (``html_text``) and PDF keeps
its page numbers (``pdf_text``: pages joined by blank lines, each page's start offset recorded).
``detect_format`` names the format of an upload from what the caller said, the file name and the
content type; a format no extractor reads is ``UnsupportedMediaType`` (415).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Protocol

from bastion.errors import InvalidRequest, UnsupportedMediaType
from bastion.knowledge.html_text import html_to_text
from bastion.knowledge.pdf_text import pdf_pages


@dataclass(frozen=True, slots=True)
class Extracted:
    text: str
    #: (start offset, page number) for each page, in order; empty: the format has no pages.
    pages: list[tuple[int, int]] = field(default_factory=list)
    title: str | None = None
    #: Extra boundaries the chunker should prefer (e.g. Markdown headings and list items).
    markdown: bool = False


class Extractor(Protocol):
    """One document format. ``extract`` raises ``InvalidRequest`` for content it cannot read."""

    formats: tuple[str, ...]

    def extract(self, data: bytes | str) -> Extracted: ...


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        text = data
    else:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InvalidRequest("the document is not valid UTF-8 text") from None
    if "\x00" in text:  # a binary file sent as text (and PostgreSQL stores no NUL in text)
        raise InvalidRequest("the document contains NUL characters: is it a binary file?")
    return text


class PlainText:
    formats: tuple[str, ...] = ("text", "txt", "text/plain")

    def extract(self, data: bytes | str) -> Extracted:
        return Extracted(_decode(data))


_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)


class Markdown:
    formats: tuple[str, ...] = ("markdown", "md", "text/markdown")

    def extract(self, data: bytes | str) -> Extracted:
        text = _decode(data)
        heading = _HEADING.search(text)
        return Extracted(text, title=heading.group(1).strip() if heading else None, markdown=True)


class Html:
    formats: tuple[str, ...] = ("html", "htm", "text/html", "application/xhtml+xml")

    def extract(self, data: bytes | str) -> Extracted:
        text, title = html_to_text(_decode(data))
        return Extracted(text, title=title)


class Pdf:
    formats: tuple[str, ...] = ("pdf", "application/pdf")

    def extract(self, data: bytes | str) -> Extracted:
        if isinstance(data, str):
            raise InvalidRequest("a PDF is uploaded as a file (or base64 content), not as text")
        parts: list[str] = []
        pages: list[tuple[int, int]] = []
        offset = 0
        for number, page in enumerate(pdf_pages(data), start=1):
            page = page.strip()
            if not page:
                continue
            if parts:
                parts.append("\n\n")
                offset += 2
            pages.append((offset, number))
            parts.append(page)
            offset += len(page)
        return Extracted("".join(parts), pages=pages)


_EXTRACTORS: dict[str, Extractor] = {}


def register_extractor(extractor: Extractor) -> None:
    for name in extractor.formats:
        _EXTRACTORS[name] = extractor


register_extractor(PlainText())
register_extractor(Markdown())
register_extractor(Html())
register_extractor(Pdf())

#: File name extensions -> format.
_EXTENSIONS = {
    ".txt": "text", ".text": "text", ".md": "markdown", ".markdown": "markdown",
    ".html": "html", ".htm": "html", ".xhtml": "html", ".pdf": "pdf",
}  # fmt: skip
#: Content types that say nothing about the format.
_GENERIC_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})


def extractor_for(format_name: str) -> Extractor:
    extractor = _EXTRACTORS.get(format_name.lower())
    if extractor is None:
        known = ", ".join(sorted(name for name in _EXTRACTORS if "/" not in name))
        raise UnsupportedMediaType(f"unsupported document format {format_name[:64]!r} (supported: {known})")
    return extractor


def format_name(name: str) -> str:
    """The canonical name of a format (``md`` -> ``markdown``, ``text/html`` -> ``html``); 415 if unknown."""
    return extractor_for(name).formats[0]


def detect_format(
    declared: str | None, filename: str | None = None, content_type: str | None = None, head: bytes = b""
) -> str:
    """The format of an upload: the one declared, else the file name's extension, else a specific
    content type (``text/plain; charset=utf-8`` counts as ``text``), else a PDF's signature at the
    start of the bytes (``head``). 415 when none says."""
    if declared:
        return format_name(declared.strip())
    suffix = PurePosixPath(filename.replace("\\", "/")).suffix.lower() if filename else ""
    if suffix in _EXTENSIONS:
        return _EXTENSIONS[suffix]
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media not in _GENERIC_TYPES and media in _EXTRACTORS:
        return format_name(media)
    if head.startswith(b"%PDF-"):
        return "pdf"
    what = f"{filename!r}" if filename else "the upload"
    known = ", ".join(sorted(set(_EXTENSIONS)))
    raise UnsupportedMediaType(
        f"cannot tell the format of {what} (content type {media or 'none'}); "
        f"supported files: {known}, or name the format"
    )


def page_at(pages: list[tuple[int, int]], offset: int) -> int | None:
    """The page holding ``offset`` (None when the format has no pages)."""
    page: int | None = None
    for start, number in pages:
        if start > offset:
            break
        page = number
    return page
