"""The no-JavaScript form with one video: the server's peak memory must not grow with its size.

Starts the real server (`chuishao serve`, SQLite) once per size, fetches the report form (for
its one-time token) and posts the form as a browser without JavaScript does, multipart, the
file streamed from disk in 64 KiB writes. It prints, per size: the server's resident memory
at rest and at its peak (VmHWM, over the process's life), the time to the receipt's redirect,
and the peak's growth over the floor: the same post with no file at all. Memory that
followed the file would make the growth ratio between two sizes about their size ratio; flat
memory keeps it near 1.

Usage: python bench/nojs_upload.py [--mb 10 120]
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import free_port, prepare_installation, server_env, server_process  # noqa: E402
from upload import memory_kb, server_pid  # noqa: E402

BOUNDARY = "----chuishaobenchboundary"
PIECE = 65536
FIELDS = {"sealing": "noscript", "channel": "acme", "unit": "某厂", "location": "冲压线",
          "category": "hazard", "description": "光电保护被拆除，录像为证", "seen_at": "周一",
          "insider": "yes", "unclean": "send"}


def make_video(work: Path, mb: int) -> Path:
    path = work / f"video-{mb}.mp4"
    with path.open("wb") as out:
        out.write(b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom")
        left = mb * 1_000_000 - 24
        while left > 0:
            out.write(os.urandom(min(left, 1 << 20)))
            left -= 1 << 20
    return path


def _parts(fields: dict[str, str], video: Path | None) -> tuple[list[bytes], bytes, int]:
    head = b"".join(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        .encode() for name, value in fields.items())
    if video is None:
        return [head], f"--{BOUNDARY}--\r\n".encode(), 0
    head += (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; '
             f'filename="{video.name}"\r\nContent-Type: video/mp4\r\n\r\n').encode()
    return [head], f"\r\n--{BOUNDARY}--\r\n".encode(), video.stat().st_size


def post_report(port: int, video: Path | None) -> float:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request("GET", "/")
    page = conn.getresponse().read().decode()
    token = re.search(r'name="form_token" value="([^"]+)"', page)
    assert token, "no form token on the page"
    head, tail, size = _parts({**FIELDS, "form_token": token.group(1)}, video)

    def body() -> Iterator[bytes]:
        yield from head
        if video is not None:
            with video.open("rb") as source:
                while piece := source.read(PIECE):
                    yield piece
        yield tail

    length = sum(map(len, head)) + size + len(tail)
    started = time.monotonic()
    conn.request("POST", "/report", body=body(), headers={
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
        "Content-Length": str(length)})
    response = conn.getresponse()
    response.read()
    took = time.monotonic() - started
    conn.close()
    if response.status != 303 or response.getheader("Location") != "/report/sent":
        raise RuntimeError(f"the report was not accepted: {response.status}")
    return took


def measure(work: Path, mb: int) -> tuple[int, int, float]:
    """(RSS at rest, peak RSS, seconds) of a fresh server taking one post with ``mb`` MB."""
    data = work / f"var-{mb}"
    port = free_port()
    env = server_env(data, port, CHUISHAO_RECEIPT_ITERATIONS="1000",
                     CHUISHAO_LOG_LEVEL="WARNING")
    prepare_installation(env)
    video = make_video(work, mb) if mb else None
    serve = [sys.executable, "-m", "service.cli", "serve"]
    with server_process(serve, env, port, work / f"server-{mb}.log"):
        pid = server_pid(port)
        post_report(port, None)  # warm: templates, the first connection, the lanes
        rest = memory_kb(pid, "VmRSS")
        took = post_report(port, video)
        peak = memory_kb(pid, "VmHWM")
    if video is not None:
        video.unlink()
    return rest, peak, took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", nargs=2, type=int, default=[10, 120], metavar=("SMALL", "LARGE"))
    args = parser.parse_args()
    small, large = args.mb
    if not 1 <= small < large <= 200:
        parser.error("--mb SMALL LARGE with 1 <= SMALL < LARGE <= 200")
    with tempfile.TemporaryDirectory(prefix="chuishao-nojs-") as tmp:
        work = Path(tmp)
        figures = {mb: measure(work, mb) for mb in (0, small, large)}
    floor = figures[0][1]
    print("no-JavaScript report, one video, SQLite; one fresh server per size")
    for mb, (rest, peak, took) in figures.items():
        label = "floor (no file)" if mb == 0 else f"{mb} MB video"
        rate = f", {mb / took:.0f} MB/s" if mb else ""
        print(f"  {label:16} rest {rest / 1024:6.1f} MiB, peak {peak / 1024:6.1f} MiB "
              f"(+{(peak - floor) / 1024:5.1f} MiB over the floor), post -> 303 "
              f"{took:6.2f} s{rate}")
    growth_small = max(1, figures[small][1] - floor)
    growth_large = max(1, figures[large][1] - floor)
    print(f"  peak growth {large} MB / {small} MB: {growth_large / growth_small:.2f} "
          f"(file size ratio {large / small:.0f}; flat memory: near 1)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
