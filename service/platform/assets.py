"""Static assets: read and gzipped once at start, served under a content-hashed URL.

Every file is addressed as ``/static/<version>/<path>``, where ``<version>`` is a hash of the
whole static tree. A hash of the tree rather than of each file, because the scripts are ES
modules that import each other by relative URL: with one version prefix those imports stay
inside the same immutable snapshot, and a change to any file changes every URL. So the
browser may keep every asset for a year without asking again (``immutable``), and a new
release is fetched at once.

Compression: static files are compressed once, at start, scripts after dropping their
whole-line comments (``compact``). Pages are not, with two exceptions (PageCompression): they
are ``no-store`` and many carry secrets (CSRF tokens, the console's key handle, a receipt)
next to text an attacker can make the page reflect, which is what BREACH needs. Static files
and the reporter's empty forms reuse no secret and reflect nothing, so compressing them is
safe. Unversioned ``/static/<path>`` still answers (short cache)
for anything that links a file directly.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.platform import resources

STATIC_DIR = resources.package_data("service", "static")
PREFIX = "/static/"
VERSION_LENGTH = 16
# No "public": a response to a request without credentials is cacheable without it.
IMMUTABLE = "max-age=31536000, immutable"
SHORT = "max-age=3600"
# Below this size gzip's header costs more than it saves.
MIN_COMPRESS = 256
TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
    ".json": "application/json",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes | None
    media_type: str
    etag: str


@dataclass(frozen=True)
class Assets:
    version: str
    files: dict[str, Asset]

    def url(self, path: str) -> str:
        if path not in self.files:
            # A template naming a file that does not exist is a bug, found on first render.
            raise KeyError(f"no static asset {path!r}")
        return f"{PREFIX}{self.version}/{path}"


def _media_type(path: Path) -> str:
    guessed = mimetypes.guess_type(path.name)[0]
    return TYPES.get(path.suffix) or guessed or "application/octet-stream"


def compact(relative: str, body: bytes) -> bytes:
    """A script as served: the repository's file without its whole-line ``//`` comments.

    The comments explain the code to its readers and are a third of what a reporter's phone
    would download (gzip cannot squeeze prose much). Only lines whose first non-blank
    characters are ``//`` go, newline and all; no script holds a template literal or string
    spanning lines (tests/platform/test_assets.py checks), so such a line is always a comment
    and the code runs as written. Anyone can repeat this rule to compare what was served.
    """
    if not relative.endswith(".js"):
        return body
    return b"".join(line for line in body.splitlines(keepends=True)
                    if not line.lstrip().startswith(b"//"))


def build(directory: Path = STATIC_DIR) -> Assets:
    files: dict[str, Asset] = {}
    tree = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        relative = path.relative_to(directory).as_posix()
        body = compact(relative, path.read_bytes())
        digest = hashlib.sha256(body).hexdigest()
        tree.update(f"{relative}\0{digest}\0".encode())
        gzipped = gzip.compress(body, compresslevel=9, mtime=0)
        files[relative] = Asset(
            body=body,
            gzipped=gzipped if len(body) >= MIN_COMPRESS and len(gzipped) < len(body) else None,
            media_type=_media_type(path),
            etag=f'"{digest[:32]}"',
        )
    return Assets(version=tree.hexdigest()[:VERSION_LENGTH], files=files)


@functools.cache
def current() -> Assets:
    return build()


def url(path: str) -> str:
    """The one helper templates use to name a static file."""
    return current().url(path)


def _accepts_gzip(request: Request) -> bool:
    for part in request.headers.get("accept-encoding", "").split(","):
        name, _, params = part.strip().partition(";")
        if name.strip().lower() in ("gzip", "*"):
            return params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


def respond(request: Request, assets: Assets, path: str, cache: str) -> Response:
    asset = assets.files.get(path)
    if asset is None:
        # The site's own translated 404 page (the one error handler), not a bare text.
        raise HTTPException(status_code=404)
    headers = {"Cache-Control": cache, "Vary": "Accept-Encoding"}
    if cache != IMMUTABLE:  # an immutable file is never revalidated
        headers["ETag"] = asset.etag
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    body = asset.body
    if asset.gzipped is not None and _accepts_gzip(request):
        body = asset.gzipped
        headers["Content-Encoding"] = "gzip"
    if request.method == "HEAD":
        headers["Content-Length"] = str(len(body))
        return Response(status_code=200, headers=headers, media_type=asset.media_type)
    return Response(body, headers=headers, media_type=asset.media_type)


async def static(request: Request) -> Response:
    assets = current()
    path: str = request.path_params["path"]
    head, _, rest = path.partition("/")
    if head == assets.version and rest:
        return respond(request, assets, rest, IMMUTABLE)
    if len(head) == VERSION_LENGTH and rest in assets.files:
        # A page from before a release asks for an old snapshot: answer the current file,
        # but let no cache keep it under the old name.
        return respond(request, assets, rest, "no-cache")
    return respond(request, assets, path, SHORT)


async def favicon(request: Request) -> Response:
    return respond(request, current(), "favicon.svg", SHORT)


# The reporter's empty forms, as fetched by GET with no query string: only these are
# compressed. BREACH reads a secret that stays the same across many compressed responses, each
# of which also reflects text the attacker chose. These pages reflect nothing of the request,
# and the one token they carry (the intake form's one-time token, service/domain/formtoken.py)
# is drawn afresh for every answer, so no two responses share a secret to be guessed at.
# A page added here must keep both: no reflected input, no secret reused between responses.
# The channel list (JSON) qualifies with no secret at all: public keys and the public salt,
# the same for every visitor; compressed it is a quarter smaller, on every visit.
COMPRESSIBLE_PAGES = frozenset({"/", "/followup", "/api/v1/channels"})
_COMPRESSIBLE_TYPES = ("text/html", "application/json")


class PageCompression:
    """gzip for the pages in COMPRESSIBLE_PAGES, and for nothing else."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["method"] != "GET"
                or scope["path"] not in COMPRESSIBLE_PAGES or scope.get("query_string")
                or not _accepts_gzip(Request(scope))):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def send_wrapper(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = b"".join(chunks)
            headers = MutableHeaders(scope=start)
            if (start["status"] == 200 and "set-cookie" not in headers
                    and "content-encoding" not in headers
                    and headers.get("content-type", "").startswith(_COMPRESSIBLE_TYPES)):
                body = gzip.compress(body, compresslevel=6, mtime=0)
                headers["Content-Encoding"] = "gzip"
                headers["Content-Length"] = str(len(body))
                headers.append("Vary", "Accept-Encoding")
            await send(start)
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, send_wrapper)
