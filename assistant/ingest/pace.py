"""Library changes that a server runs beside questions leave the interpreter to the questions.

A server runs its library changes in one background thread at a lower OS priority (`library.JOB_NICENESS`),
but an OS priority does not reach Python's GIL: the pure-Python part of indexing (jieba's tokens for the
keyword index, sentence spans, chunks) took the GIL from the threads answering questions. Beside 20 clients
asking, a 40 MB .csv upload held it about a quarter of the time and the questions' p95 rose 1.5-2.4x
(bench/hostile_mix.py). So a thread that `yield_to`s questions calls `pace()` between its units of work, and
while questions are being answered it sleeps there long enough to keep its own CPU time (which, for Python
code, is time holding the GIL) to `share` of the time. With no question in flight it runs at full speed, and
a thread that never called `yield_to` (`assistant index`, `assistant worker`) is never slowed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# The share of the time a paced thread may work while questions are answered: an upload indexed beside a
# full load of questions takes about 1 / SHARE as long in its Python parts (its reading and embedding have
# bounds of their own: the reader process's priority, the engine's background lane).
SHARE = 0.2
# CPU seconds of work between two looks at the clock's budget: a sleep is never shorter than a few ms.
SLICE = 0.01

_local = threading.local()


def yield_to(busy: Callable[[], bool], share: float = SHARE) -> None:
    """From now on, `pace()` on this thread keeps its work to `share` of the time while `busy()` is true."""
    _local.busy, _local.share, _local.since = busy, share, time.thread_time()


def resume() -> None:
    """Count this thread's work afresh from now (at the start of a job: what it did before, embedding
    included, which has a lane of its own, is not held against it)."""
    _local.since = time.thread_time()


def pace() -> None:
    """Between two units of work (a file, a document, a chunk): sleeps while questions are answered, to
    keep this thread's work to its share; returns at once on a thread that does not yield to questions."""
    busy = getattr(_local, "busy", None)
    if busy is None:
        return
    worked = time.thread_time() - _local.since
    if worked < SLICE:
        return
    if busy():
        time.sleep(worked * (1 - _local.share) / _local.share)
    _local.since = time.thread_time()
