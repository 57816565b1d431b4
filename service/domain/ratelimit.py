"""Global rate limits for what proof-of-work cannot protect (the no-JavaScript path).

Global on purpose: limiting per visitor would need to know visitors, and we keep no address.
A token bucket per purpose, in this process's memory.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from service.platform.errors import RateLimited


class TokenBucket:
    def __init__(self, per_hour: int, *, burst: int | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = per_hour / 3600.0
        self.capacity = float(burst if burst is not None else max(1, per_hour // 6))
        self.tokens = self.capacity
        self.clock = clock
        self.updated = clock()
        self.lock = threading.Lock()

    def take(self) -> None:
        """Use one token or raise RateLimited (a translated 429)."""
        with self.lock:
            now = self.clock()
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            if self.tokens < 1:
                raise RateLimited()
            self.tokens -= 1
