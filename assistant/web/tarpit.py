"""A client that keeps being refused gets its refusals more slowly: a flood of bad requests costs it time.

A refusal is cheap to make (a 400 for JSON nested 100,000 deep, a 413 for an oversize question, a 401 for a
wrong token) but not free: at 100 a second from one client in a loop, the server's parsing, middleware and
log lines took about a sixth of what it had for the questions of 20 normal clients (bench/hostile_mix.py).
So each client (by address) may be refused BURST times at once and RATE times a second after that; past it,
each further refusal is answered after a wait (at most MAX_DELAY s). Waiting costs the server an idle
coroutine, not CPU, and a client in a loop is held to about RATE refusals a second. Answers that are not
refusals are never delayed, so a client that is refused now and then (a typo in a token, a question over
the limit) never notices; behind a proxy every client shares the proxy's address, and only their refusals
are slowed.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict

BURST = 20
RATE = 5.0
MAX_DELAY = 2.0
# Clients remembered (the least recently refused forgotten first): bounded memory whatever the addresses.
CLIENTS = 10_000


class Tarpit:
    """Per client, a leaky bucket of refusals: each adds one, RATE leak out a second; a refusal that finds
    more than BURST in it waits until it would not. Kept on the event loop's thread: no lock."""

    def __init__(self, burst: int = BURST, rate: float = RATE, max_delay: float = MAX_DELAY):
        self.burst, self.rate, self.max_delay = burst, rate, max_delay
        self._levels: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client: (level, when)

    def delay(self, client: str) -> float:
        """Count one refusal of `client`; the seconds it should wait before it is sent."""
        now = time.monotonic()
        level, when = self._levels.pop(client, (0.0, now))
        # Capped: a client that stops is back to its full burst within MAX_DELAY + BURST / RATE seconds.
        level = min(max(0.0, level - (now - when) * self.rate) + 1, self.burst + self.rate * self.max_delay)
        self._levels[client] = (level, now)
        if len(self._levels) > CLIENTS:
            self._levels.popitem(last=False)
        return min(self.max_delay, max(0.0, (level - self.burst) / self.rate))

    async def refused(self, client: str) -> None:
        if (seconds := self.delay(client)) > 0:
            await asyncio.sleep(seconds)
