"""The pure tests' shared settings."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import argon2
import pytest
from hypothesis import settings

# Two workers on a shared machine: hypothesis's 200 ms deadline per example measured the machine's load, not the
# code (DeadlineExceeded in the courses' domain tests while other jobs ran). Each test keeps its number of examples.
settings.register_profile("pure", deadline=None)
# `make test-fast` (the edit loop, issue 17) loads this one with --hypothesis-profile: a quarter of the examples,
# as the property tests were two fifths of its test time; `make test` and CI run the full count ("pure").
settings.register_profile("edit-loop", parent=settings.get_profile("pure"), max_examples=25)
settings.load_profile("pure")


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """argon2id as in production, with a small memory and time cost: a hash at the production cost (64 MiB) takes
    a good part of a second, and the demo accounts alone are six of them; `make test-fast` is meant for seconds.
    The service and browser tests sign in at the production cost."""
    # Named by its path, so that only the tests import gateway.auth (and its argon2 hash at import time), not the
    # xdist controller that loads this file before it starts the workers.
    monkeypatch.setattr(
        "gateway.auth.PasswordHasher", functools.partial(argon2.PasswordHasher, time_cost=1, memory_cost=1024)
    )
    yield
