"""A reporter's client of the public JSON API: seals locally, sends only ciphertext.

``chuishao submit`` uses it against a real server over HTTP; tests drive it through an
in-process transport. It follows docs/API.md step by step, as any third-party client would.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import crypto
from service.domain import filetypes, pow, sealing
from service.domain.metadata import strip_metadata

# Times an interrupted upload is resumed before the client gives up (and discards the draft).
RESUME_ATTEMPTS = 3


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


class Transport(Protocol):
    def __call__(self, method: str, path: str, *, body: bytes | None = None,
                 headers: dict[str, str] | None = None) -> tuple[int, bytes]: ...


def urllib_transport(base_url: str, timeout: float = 60.0) -> Transport:
    base = base_url.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ValueError("the server URL must start with http:// or https://")

    def send(method: str, path: str, *, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        request = urllib.request.Request(base + path, data=body, method=method,  # noqa: S310
                                         headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    return send


def solve_pow(challenge: str, difficulty: int) -> str:
    """A stamp for the challenge (docs/API.md §3.2): one counter per small puzzle, joined by
    ".", puzzle i solved when SHA-256(challenge:i:counter) has the puzzle's zero bits."""
    puzzles, bits = pow.puzzle_shape(difficulty)
    counters = []
    for index in range(puzzles):
        prefix = f"{challenge}:{index}:".encode()
        counter = 0
        while pow.leading_zero_bits(hashlib.sha256(prefix + b"%d" % counter).digest()) < bits:
            counter += 1
        counters.append(str(counter))
    return f"{challenge}:{'.'.join(counters)}"


@dataclass
class Client:
    transport: Transport
    language: str = "zh-CN"
    # Seconds to wait before resuming an interrupted upload (a restarting server, a new link).
    resume_pause: float = 2.0

    def _call(self, method: str, path: str, payload: Any = None, *, raw: bytes | None = None,
              token: str | None = None, expect: tuple[int, ...] = (200, 201, 204)) -> Any:
        headers = {"Accept": "application/json", "Accept-Language": self.language}
        body = raw
        if payload is not None:
            body = json.dumps(payload).encode()
            headers["Content-Type"] = "application/json"
        elif raw is not None:
            headers["Content-Type"] = "application/octet-stream"
        if token:
            headers["Authorization"] = f"Bearer {token}"
        status, data = self.transport(method, path, body=body, headers=headers)
        if status not in expect:
            try:
                error = json.loads(data)["error"]
                raise ApiError(status, error["code"], error["message"])
            except (ValueError, KeyError, TypeError):
                raise ApiError(status, "http", data[:200].decode("utf-8", "replace")) from None
        if status == 204 or not data:
            return None
        return json.loads(data)

    def channels(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/api/v1/channels")
        return result

    def stamp(self, declared_bytes: int = 0) -> str:
        """A solved stamp, priced for an upload of ``declared_bytes`` stored bytes."""
        challenge = self._call("GET", f"/api/v1/pow?bytes={int(declared_bytes)}")
        return solve_pow(challenge["challenge"], challenge["difficulty"])

    def submit(self, channel_id: str, report: dict[str, Any],
               identity: dict[str, Any] | None = None,
               files: Iterable[sealing.PlainFile] = (),
               progress: Callable[[int, int], None] | None = None) -> str:
        """Seal and send a report; returns the receipt once the server confirmed it."""
        info = self.channels()
        if info.get("installation") is None:
            raise ApiError(503, "not_initialised", "the server is not set up")
        channel = next((c for c in info["channels"] if c["id"] == channel_id), None)
        if channel is None:
            raise ApiError(400, "unknown_channel", f"no open channel {channel_id!r}")
        salt = crypto.b64u_decode(info["installation"]["salt"])
        sealed = sealing.seal_submission(channel, salt,
                                         info["installation"]["receipt_iterations"],
                                         report, identity, list(files),
                                         inline_limit=info.get("limits", {}).get("inline_bytes", 0))
        created = self._call("POST", "/api/v1/submissions",
                             {**sealed.envelope, "pow": self.stamp(
                                 sum(f["stored_size"] for f in sealed.envelope["files"]))})
        case_id, token = created["case_id"], created["upload_token"]
        if created["ready"]:
            return sealed.receipt
        total = sum(f["chunk_count"] for f in sealed.envelope["files"])
        batch = int(info.get("limits", {}).get("batch_chunks", 1))
        base = f"/api/v1/submissions/{case_id}"
        received: dict[str, set[int]] = {}

        def advanced() -> None:
            if progress:
                progress(sum(map(len, received.values())), total)

        try:
            for attempt in range(RESUME_ATTEMPTS + 1):
                try:
                    for spec in sealed.envelope["files"]:
                        self.upload(f"{base}/files/{spec['id']}", sealed.chunks[spec["id"]],
                                    received.setdefault(spec["id"], set()), token, batch,
                                    advanced)
                    self._call("POST", f"{base}/finish", {}, token=token)
                    break
                except (OSError, ApiError) as exc:
                    if attempt == RESUME_ATTEMPTS or not resumable(exc):
                        raise
                    # Interrupted: ask the server what it holds and send only the rest.
                    time.sleep(self.resume_pause)
                    state = self._call("GET", base, token=token)
                    received = {f["id"]: set(f["received"]) for f in state["files"]}
        except BaseException:
            # Never leave half a case behind: discard the draft whole, then re-raise.
            with contextlib.suppress(ApiError):
                self._call("DELETE", f"/api/v1/submissions/{case_id}", token=token)
            raise
        return sealed.receipt

    def upload(self, path: str, chunks: Callable[[], Iterator[bytes]], have: set[int],
               token: str, batch: int, progress: Callable[[], None] | None = None) -> None:
        """Send the chunks of one file not in ``have`` (updated as the server acknowledges),
        ``batch`` per request (docs/API.md 4.3); a server without batches gets one a time."""
        for first, run in runs(chunks(), have, batch):
            if batch > 1:
                self._call("PUT", f"{path}/batch/{first}/{len(run)}", raw=b"".join(run),
                           token=token)
            else:
                self._call("PUT", f"{path}/chunks/{first}", raw=run[0], token=token)
            have.update(range(first, first + len(run)))
            if progress:
                progress()


def runs(chunks: Iterable[bytes], have: set[int], limit: int) -> Iterator[tuple[int, list[bytes]]]:
    """Consecutive chunks not in ``have``, at most ``limit`` at a time, as (first, chunks)."""
    run: list[bytes] = []
    first = 0
    for index, chunk in enumerate(chunks):
        if index in have or len(run) == limit:
            if run:
                yield first, run
            run = []
        if index not in have:
            if not run:
                first = index
            run.append(chunk)
    if run:
        yield first, run


def resumable(error: BaseException) -> bool:
    """A network failure or an answer that stored nothing and may pass when tried again."""
    if isinstance(error, ApiError):
        return error.status >= 500 or error.code in ("body_timeout", "upload_incomplete")
    return isinstance(error, OSError)


def plain_file(path: Path, number: int = 1, *, keep_name: bool = False) -> sealing.PlainFile:
    """A file from disk, photo metadata stripped (JPEG/PNG) as the browser would, named
    ``photo-1.jpg`` style (type from its bytes) unless ``keep_name``."""
    data = path.read_bytes()
    kind = filetypes.detect(data, path.name)
    result = strip_metadata(data)
    content = result.data
    name = path.name if keep_name else filetypes.neutral_name(
        kind, number, lambda text, **params: text.format(**params))
    return sealing.PlainFile(name=name[:200], type=kind.mime, size=len(content),
                             read=lambda: [content], removed=tuple(result.removed),
                             cleaned=result.cleaned)
