"""CPU-heavy work (key derivations, scrypt, the metadata stripper) off the event loop.

Each kind of work has its own lane: a worker thread pool of bounded size, waited for in
arrival order. A flood of one kind (sign-ins with made-up names, receipt guesses, odd files)
then uses at most its lane's threads; the event loop and the other lanes keep going. The
derivations release the GIL, so a lane thread runs beside the loop on another core.

Work a request needs can be done before the request takes its database gate (see
``service.platform.db``'s ``prepare``): it is then remembered for that request only, and the
synchronous domain code asks ``prepared`` for it instead of computing it again under the gate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import Callable, Hashable, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from service.platform.errors import ChuishaoError
from service.platform.i18n import N_

T = TypeVar("T")
log = logging.getLogger("chuishao.offload")

# Threads per lane. One each: two cores serve a whole installation, and a lane that is
# busy must leave the loop and the other lanes a core.
LANES = {"password": 1, "receipt": 1, "files": 1, "chunks": 1}
# A request that waited this long for its lane is answered "busy" rather than kept waiting.
MAX_WAIT_SECONDS = 60.0


class Busy(ChuishaoError):
    status = 503
    code = "busy"
    message = N_("The service is very busy right now. Nothing was changed; please try again "
                 "in a minute.")


# Per event loop (tests run several, one after the other), per lane.
Lanes = dict[str, anyio.CapacityLimiter]
_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Lanes] = (
    weakref.WeakKeyDictionary())
_memo: ContextVar[dict[Hashable, Any] | None] = ContextVar("chuishao_prepared", default=None)


def _limiter(lane: str) -> anyio.CapacityLimiter:
    lanes = _limiters.setdefault(asyncio.get_running_loop(), {})
    limiter = lanes.get(lane)
    if limiter is None:
        limiter = lanes[lane] = anyio.CapacityLimiter(LANES[lane])
    return limiter


async def run(lane: str, fn: Callable[..., T], *args: Any, remember: bool = False) -> T:
    """``fn(*args)`` in a thread of ``lane``. ``remember``: kept for ``prepared`` for the rest
    of this request (a prepare step, before the database gate)."""
    limiter = _limiter(lane)
    try:
        with anyio.fail_after(MAX_WAIT_SECONDS):
            await limiter.acquire()
    except TimeoutError:
        raise Busy() from None
    try:
        result = await anyio.to_thread.run_sync(fn, *args)
    finally:
        limiter.release()
    memo = _memo.get() if remember else None
    if memo is not None:
        with contextlib.suppress(TypeError):  # unhashable arguments: nothing to remember
            memo[(fn, *args)] = result
    return result


def prepared(fn: Callable[..., T], *args: Any) -> T:
    """The result of ``fn(*args)`` if this request already computed it off the loop, else
    computed here (command line, tests, a path without a prepare step)."""
    memo = _memo.get()
    if memo is not None:
        with contextlib.suppress(TypeError, KeyError):
            return memo[(fn, *args)]  # type: ignore[no-any-return]
        # A request path whose prepare step did not cover this: it runs under the database
        # gate, on the event loop unless the caller is in a lane.
        log.warning("%s ran without its prepare step", getattr(fn, "__name__", "work"))
    return fn(*args)


@contextlib.contextmanager
def request_memo() -> Iterator[None]:
    """Scope of what ``run`` remembers: one request."""
    token = _memo.set({})
    try:
        yield
    finally:
        _memo.reset(token)
