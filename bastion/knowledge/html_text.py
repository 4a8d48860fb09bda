"""HTML -> plain text for indexing: scripts, styles, navigation, headers, footers and asides are
left out; block elements (paragraphs, headings, list items, table rows, ...) end a line, and a
heading or paragraph a paragraph, so the chunker finds the document's own boundaries.

The standard library's tolerant parser: malformed markup still gives its text, never an error.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

#: Elements whose whole content is left out.
SKIPPED = frozenset(
    {"script", "style", "noscript", "template", "nav", "header", "footer", "aside", "svg", "iframe", "head", "form"}
)
#: Elements that need no end tag (they never open a skipped region).
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"}
)
#: Elements that end a paragraph (a blank line after them).
_PARAGRAPH = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "ul", "ol", "dl", "section", "article"}
)
#: Elements that end a line.
_LINE = frozenset(
    {"div", "li", "tr", "dt", "dd", "br", "hr", "main", "figure", "figcaption", "caption", "address", "details"}
)
_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")
#: Where a paragraph ends (a blank line in the text), as opposed to a line.
_PARAGRAPH_MARK = "\x1e"
_BREAKS = re.compile(r"[ \t]*(?:[\n\x1e][ \t]*)+")


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: str | None = None
        self.first_heading: str | None = None
        self._skipping: list[str] = []
        self._in_title = False
        self._in_heading = False
        self._heading: list[str] = []
        self._pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID:
            if not self._skipping and tag in ("br", "hr"):
                self.parts.append("\n")
            return
        if tag == "title":
            self._in_title = True
        if self._skipping or tag in SKIPPED:
            self._skipping.append(tag)
            return
        if tag == "pre":
            self._pre += 1
        if tag in _PARAGRAPH:
            self.parts.append(_PARAGRAPH_MARK)
        elif tag in _LINE:
            self.parts.append("\n")
        elif tag in ("td", "th"):
            self.parts.append(" ")
        if tag in ("h1", "h2", "h3") and self.first_heading is None:
            self._in_heading = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if self._skipping:
            if tag in self._skipping:  # close up to the matching start (tolerates unclosed children)
                while self._skipping and self._skipping.pop() != tag:
                    pass
            return
        if tag == "pre":
            self._pre = max(0, self._pre - 1)
        if tag in _PARAGRAPH:
            self.parts.append(_PARAGRAPH_MARK)
        elif tag in _LINE:
            self.parts.append("\n")
        if self._in_heading and tag in ("h1", "h2", "h3"):
            self._in_heading = False
            heading = " ".join("".join(self._heading).split())
            self.first_heading = heading or None

    def handle_data(self, data: str) -> None:
        if self._in_title:
            title = " ".join(data.split())
            self.title = (self.title + " " + title if self.title else title) or None
            return
        if self._skipping:
            return
        if self._in_heading:
            self._heading.append(data)
        data = data.replace(_PARAGRAPH_MARK, " ")
        if self._pre:
            self.parts.append(data)
        else:
            self.parts.append(_SPACES.sub(" ", data.replace("\n", " ")))


def html_to_text(source: str) -> tuple[str, str | None]:
    """The visible text of an HTML document and its title (``<title>``, else the first heading)."""
    parser = _Text()
    parser.feed(source)
    parser.close()
    raw = "".join(parser.parts)
    text = _BREAKS.sub(lambda m: "\n\n" if _PARAGRAPH_MARK in m.group() else "\n", raw).strip()
    title = parser.title or parser.first_heading
    return text, title
