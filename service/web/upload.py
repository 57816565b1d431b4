"""The no-JavaScript form, read as it arrives: fields in memory, files streamed.

Starlette's parser keeps a form whole (we told it never to spool plaintext to disk), which
bounded a post to what memory can hold. Here each file is judged by its first bytes as they
arrive (``filetypes.detect``, the same rule as the stripper): a JPEG or PNG, whose hidden data
can only be removed with the whole picture at hand, is held in memory up to
``max_nojs_held_bytes`` for all the pictures of one post; every other file (sent as it is,
per the reporter's choice) goes to a sealed ``Spool`` piece by piece, up to ``max_file_bytes``
like the JavaScript path. Memory per post: the pictures plus a piece or two.

A file over its limit does not end the reading: its bytes are dropped, the rest of the form is
read, and the view answers the form again, filled in, with the limit named. Runs in the route's
prepare step (``service.platform.db``), before the database gate; the view finds the result in
the request scope. The spools are closed when the request ends (``bodylimit.RequestBody``).
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request

from service.domain import filetypes, reportform
from service.domain.serverseal import Upload
from service.platform.errors import ChuishaoError, InvalidInput, TooLarge
from service.platform.i18n import N_
from service.platform.settings import Settings
from service.platform.spool import Spool

SCOPE_KEY = "chuishao.form"
MAX_FIELDS = 50
MAX_FIELD_BYTES = 200_000
MB = 1024 * 1024

UNREADABLE = N_("The form could not be read. Please try again.")


@dataclass
class ReceivedForm:
    fields: FormData
    files: list[Upload] = field(default_factory=list)
    # A file over its limit: the form comes back filled in, with this.
    refused: ChuishaoError | None = None


def received(request: Request) -> ReceivedForm:
    """What the prepare step read (a route without it refuses: nothing else reads the body)."""
    form = request.scope.get(SCOPE_KEY)
    if not isinstance(form, ReceivedForm):
        raise InvalidInput(UNREADABLE)
    return form


def spools(scope: MutableMapping[str, Any]) -> list[Spool]:
    """Every spool a request opened, for ``RequestBody`` to close when it ends."""
    found = scope.setdefault("chuishao.spools", [])
    assert isinstance(found, list)
    return found


class _File:
    """One file part as it streams in."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.head = bytearray()
        self.kind: filetypes.FileType | None = None
        self.held: bytearray | None = None
        self.spool: Spool | None = None
        self.size = 0
        self.dropped = False


class _Reader:
    def __init__(self, settings: Settings, scope: MutableMapping[str, Any], max_files: int) -> None:
        self.settings = settings
        self.scope = scope
        self.max_files = max_files
        self.hold: Callable[[int], None] = scope.get(
            "chuishao.hold", lambda n: None)
        self.fields: list[tuple[str, str | UploadFile]] = []
        self.files: list[_File] = []
        self.refused: ChuishaoError | None = None
        self.held_total = 0
        self._name = b""
        self._value = b""
        self._disposition = b""
        self._field: str | None = None
        self._data = bytearray()
        self._file: _File | None = None
        self._skip = False
        self._file_count = 0
        self.ended = False  # the closing boundary arrived: the form is whole

    # python-multipart callbacks ---------------------------------------------------------

    def on_part_begin(self) -> None:
        self._disposition, self._field, self._file, self._skip = b"", None, None, False
        self._data = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def on_header_end(self) -> None:
        if self._name.lower() == b"content-disposition":
            self._disposition = self._value
        self._name, self._value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if b"name" not in options:
            raise InvalidInput(UNREADABLE)
        name = _text(options[b"name"])
        if b"filename" not in options:
            if len(self.fields) >= MAX_FIELDS:
                raise InvalidInput(UNREADABLE)
            self._field = name
            return
        filename = reportform.clean_text(_text(options[b"filename"]), 200)
        if name != "files" or not filename:
            self._skip = True  # an empty file input, or a file where none belongs
            return
        self._file_count += 1
        if self._file_count > self.max_files:
            raise TooLarge(N_("At most {count} files can be attached."), count=self.max_files)
        self._file = _File(filename)
        self.files.append(self._file)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        piece = data[start:end]
        if self._file is not None:
            self._file_data(self._file, piece)
        elif self._field is not None:
            if len(self._data) + len(piece) > MAX_FIELD_BYTES:
                raise InvalidInput(UNREADABLE)
            self._data += piece

    def on_part_end(self) -> None:
        if self._file is not None:
            file = self._file
            if not file.dropped and file.kind is None:
                self._judge(file)
            if file.spool is not None:
                file.spool.finish()
        elif self._field is not None:
            self.fields.append((self._field, _text(bytes(self._data))))

    def on_end(self) -> None:
        self.ended = True

    # files --------------------------------------------------------------------------------

    def _file_data(self, file: _File, piece: bytes) -> None:
        if file.dropped:
            return
        file.size += len(piece)
        if file.size > self.settings.max_file_bytes:
            self._drop(file, InvalidInput(
                N_("A file is larger than the limit of {mb} MB."), status=413,
                mb=self.settings.max_file_bytes // MB))
            return
        if file.kind is None:
            file.head += piece
            if len(file.head) > filetypes.HEAD_BYTES:
                self._judge(file)
            return
        self._keep(file, piece)

    def _judge(self, file: _File) -> None:
        """The type from the first bytes decides where the file waits."""
        head = bytes(file.head)
        file.kind = filetypes.detect(head, file.name)
        if file.kind.cleanable:
            file.held = bytearray()
        else:
            file.spool = Spool(self.settings.data_dir / "spool")
            spools(self.scope).append(file.spool)
        file.head = bytearray(head[:filetypes.HEAD_BYTES + 1])
        self._keep(file, head)

    def _keep(self, file: _File, piece: bytes) -> None:
        if file.held is not None:
            self.held_total += len(piece)
            if self.held_total > self.settings.max_nojs_held_bytes:
                self._drop(file, InvalidInput(
                    N_("Without JavaScript, the photos of one report may be {mb} MB together "
                       "at most (their hidden data is removed on the server, whole). Send "
                       "fewer or smaller photos, or send the large ones in a reply later."),
                    status=413, code="photos_too_large",
                    mb=self.settings.max_nojs_held_bytes // MB))
                return
            self.hold(len(piece))  # the bytes all requests hold together (503 beyond)
            file.held += piece
        elif file.spool is not None:
            file.spool.write(piece)

    def _drop(self, file: _File, refusal: ChuishaoError) -> None:
        file.dropped = True
        if file.held is not None:
            self.held_total -= len(file.held)
            file.held = None
        if file.spool is not None:
            file.spool.close()
            file.spool = None
        self.refused = self.refused or refusal

    def result(self) -> ReceivedForm:
        files = [_upload(f) for f in self.files if not f.dropped]
        return ReceivedForm(FormData(self.fields), files, self.refused)


def _upload(file: _File) -> Upload:
    assert file.kind is not None
    if file.held is not None:
        data = bytes(file.held)
        return Upload(file.name, bytes(file.head), file.size, data, lambda: [data])
    spool = file.spool
    assert spool is not None
    return Upload(file.name, bytes(file.head), file.size, None, spool.read)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


async def read_form(request: Request, settings: Settings) -> None:
    """Read the no-JavaScript form into the request scope (see ``received``)."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/x-www-form-urlencoded"):
        # Without files: text only, as small as any other form.
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > settings.max_form_bytes:
                raise TooLarge(N_("What you sent is larger than the limit of {size}."),
                               size=f"{settings.max_form_bytes // MB} MB")
        pairs: list[tuple[str, str | UploadFile]] = list(parse_qsl(
            body.decode("utf-8", errors="replace"), keep_blank_values=True))
        if len(pairs) > MAX_FIELDS:
            raise InvalidInput(UNREADABLE)
        request.scope[SCOPE_KEY] = ReceivedForm(FormData(pairs))
        return
    if not content_type.startswith("multipart/form-data"):
        raise InvalidInput(N_("The form was sent in a format we do not accept."),
                           code="wrong_content_type", status=415)
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise InvalidInput(UNREADABLE)
    reader = _Reader(settings, request.scope, settings.max_files)
    parser = MultipartParser(boundary, {
        "on_part_begin": reader.on_part_begin, "on_part_data": reader.on_part_data,
        "on_part_end": reader.on_part_end, "on_header_field": reader.on_header_field,
        "on_header_value": reader.on_header_value, "on_header_end": reader.on_header_end,
        "on_headers_finished": reader.on_headers_finished, "on_end": reader.on_end})
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except FormParserError:
        raise InvalidInput(UNREADABLE) from None
    if not reader.ended:  # cut short: a part without its end
        raise InvalidInput(UNREADABLE)
    request.scope[SCOPE_KEY] = reader.result()
