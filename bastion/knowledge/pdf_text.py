"""PDF -> the text of each page (``pypdf``, imported on first use). An encrypted PDF (one that
needs a password, or any encryption pypdf cannot open) and a damaged one are refused with a
clear ``InvalidRequest``; a PDF with no extractable text (scanned images) too, since there would
be nothing to index."""

from __future__ import annotations

import io
import logging

from bastion.errors import InvalidRequest

#: Pages read at most (a bound on the work one upload can cause).
MAX_PAGES = 5000


def pdf_pages(data: bytes) -> list[str]:
    """Each page's text, in order (an empty string for a page without text)."""
    if not data.startswith(b"%PDF-"):
        raise InvalidRequest("the document is not a PDF (no %PDF- header)", code="invalid_pdf")
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError, PyPdfError

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # its warnings about sloppy files are noise here
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            raise InvalidRequest("the PDF is encrypted; upload a copy without a password", code="encrypted_pdf")
        if len(reader.pages) > MAX_PAGES:
            raise InvalidRequest(f"the PDF has over {MAX_PAGES} pages", code="invalid_pdf")
        pages = [(page.extract_text() or "").replace("\x00", "") for page in reader.pages]
    except InvalidRequest:
        raise
    except (PdfReadError, PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
        raise InvalidRequest(f"the PDF cannot be read: {exc}"[:300], code="invalid_pdf") from None
    if not any(page.strip() for page in pages):
        raise InvalidRequest("the PDF has no extractable text (scanned pages are not read)", code="invalid_pdf")
    return pages
