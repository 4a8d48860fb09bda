"""Streaming ``multipart/form-data`` for uploads (python-multipart's parser, fed as the body
arrives): the form's small text fields are kept, the one file part goes to a sink chunk by chunk,
so an upload of any size costs a few buffers of memory and a limit is enforced as it streams.

    form = await read_upload(request, open_sink)   # open_sink(fields so far) -> sink with write()

Malformed bodies, a second file, oversized fields or a body that ends early are 400s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Protocol

import structlog
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from bastion.errors import ClientClosedRequest, InvalidRequest, PayloadTooLarge

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

log = structlog.get_logger("bastion.http")

MAX_FIELD_BYTES: Final = 64 * 1024
MAX_FIELDS: Final = 32


class Sink(Protocol):
    def write(self, data: bytes) -> None: ...


@dataclass(slots=True)
class UploadForm:
    fields: dict[str, str] = field(default_factory=dict)
    #: The file part's filename and content type (None: the form had no file part).
    filename: str | None = None
    content_type: str | None = None
    has_file: bool = False


class _Reader:
    """python-multipart's callbacks: headers per part, field values, file bytes to the sink."""

    def __init__(self, file_field: str, open_sink: Callable[[dict[str, str]], Sink]) -> None:
        self.file_field = file_field
        self.open_sink = open_sink
        self.form = UploadForm()
        self.ended = False
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self._name: str | None = None
        self._value = bytearray()
        self._sink: Sink | None = None

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_end": self.on_end,
        }

    def on_part_begin(self) -> None:
        self._headers = {}
        self._name = None
        self._value = bytearray()
        self._sink = None

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[bytes(self._header_name).lower()] = bytes(self._header_value)
        self._header_name = bytearray()
        self._header_value = bytearray()

    def on_headers_finished(self) -> None:
        disposition, options = parse_options_header(self._headers.get(b"content-disposition"))
        if disposition != b"form-data" or b"name" not in options:
            raise InvalidRequest("Invalid multipart body: each part needs a form-data Content-Disposition with a name.")
        name = options[b"name"].decode("utf-8", "replace")
        if name == self.file_field:
            if self.form.has_file:
                raise InvalidRequest(f"Invalid request: only one {self.file_field} may be uploaded.", param=name)
            self.form.has_file = True
            filename = options.get(b"filename")
            self.form.filename = filename.decode("utf-8", "replace") if filename is not None else None
            content_type = self._headers.get(b"content-type")
            self.form.content_type = content_type.decode("latin-1") if content_type else None
            self._sink = self.open_sink(self.form.fields)
        elif b"filename" in options:
            raise InvalidRequest(f"Invalid request: unexpected file in field {name[:64]!r}.", param=name[:64])
        else:
            if len(self.form.fields) >= MAX_FIELDS:
                raise InvalidRequest("Invalid request: too many form fields.")
            self._name = name

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._sink is not None:
            self._sink.write(data[start:end])
            return
        self._value += data[start:end]
        if len(self._value) > MAX_FIELD_BYTES:
            raise InvalidRequest(f"Invalid request: form field {self._name!r} is too long.", param=self._name)

    def on_part_end(self) -> None:
        if self._name is not None:
            try:
                self.form.fields[self._name] = self._value.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidRequest(
                    f"Invalid request: form field {self._name!r} is not UTF-8.", param=self._name
                ) from None
        self._name = None
        self._sink = None

    def on_end(self) -> None:
        self.ended = True


def boundary_of(content_type: str | None) -> bytes:
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise InvalidRequest("Invalid request: the body must be multipart/form-data (with a boundary).")
    return boundary


async def read_upload(
    request: Request, open_sink: Callable[[dict[str, str]], Sink], max_body: int, file_field: str = "file"
) -> UploadForm:
    """Read a multipart form as it arrives. ``open_sink`` is called when the file part starts,
    with the fields read so far (a client usually sends them first), and gets every byte of it.
    A body longer than ``max_body`` in all (what surrounds the parts counts too) is a 413."""
    reader = _Reader(file_field, open_sink)
    try:
        parser = MultipartParser(boundary_of(request.headers.get("content-type")), reader.callbacks())
    except MultipartParseError as exc:  # a boundary too long
        raise InvalidRequest(f"Invalid multipart body: {exc}") from None
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_body:
                raise PayloadTooLarge(f"Request body is larger than the {max_body:,}-byte limit.", param="file")
            if chunk:
                parser.write(chunk)
    except ClientDisconnect:
        log.info("client_disconnected", during="upload", path=request.url.path, received_bytes=received)
        raise ClientClosedRequest("The client closed the connection before its upload was complete.") from None
    except MultipartParseError as exc:
        raise InvalidRequest(f"Invalid multipart body: {exc}") from None
    if not reader.ended:
        raise InvalidRequest("Invalid multipart body: it ends before its closing boundary.")
    return reader.form
