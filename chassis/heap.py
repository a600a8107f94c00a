"""The garbage collector and a long-running process's heap (issue 16).

A service holds tens of thousands of objects made at start (SQLAlchemy's tables and mappers, pydantic's
validators, FastAPI's routes, the Kafka clients) that live as long as the process. CPython's collector walks all of
them again on every full collection, which the allocations of ordinary requests set off: measured with py-spy
under the bench's load, the collector was about a twentieth of the registration service's CPU. Freezing what exists
once the process has started (:func:`gc.freeze`) leaves those objects out of every later collection; what requests
make is collected as before.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def startup_objects_frozen() -> Iterator[None]:
    """Around the running life of an app (inside its lifespan, after its start): the objects made until then are
    left out of garbage collections; at the end they are given back to the collector (an app in a test process
    is started and stopped many times, and what it held should be collectable afterwards)."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
