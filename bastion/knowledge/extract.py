"""Extractors: a document's bytes -> the text chunks point into, with its pages.

Chunk offsets index the *extracted* text (kept in the document row), so citations can quote the
exact passage. Plain text and Markdown keep their source text unchanged (so offsets are offsets
into the file too); formats that need real extraction (HTML without scripts, styles and
navigation; PDF with its page numbers) plug in here with the same interface.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol

from bastion.errors import InvalidRequest


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
        return data
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidRequest("the document is not valid UTF-8 text") from None


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


_EXTRACTORS: dict[str, Extractor] = {}


def register_extractor(extractor: Extractor) -> None:
    for name in extractor.formats:
        _EXTRACTORS[name] = extractor


register_extractor(PlainText())
register_extractor(Markdown())


def extractor_for(format_name: str) -> Extractor:
    extractor = _EXTRACTORS.get(format_name.lower())
    if extractor is None:
        known = ", ".join(sorted(name for name in _EXTRACTORS if "/" not in name))
        raise InvalidRequest(f"unsupported document format {format_name!r} (supported: {known})")
    return extractor


def page_at(pages: list[tuple[int, int]], offset: int) -> int | None:
    """The page holding ``offset`` (None when the format has no pages)."""
    page: int | None = None
    for start, number in pages:
        if start > offset:
            break
        page = number
    return page
