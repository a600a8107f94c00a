"""The pure tests' shared settings."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import argon2
import pytest
from hypothesis import settings

import gateway.auth

# Two workers on a shared machine: hypothesis's 200 ms deadline per example measured the machine's load, not the
# code (DeadlineExceeded in the courses' domain tests while other jobs ran). Each test keeps its number of examples.
settings.register_profile("pure", deadline=None)
settings.load_profile("pure")


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """argon2id as in production, with a small memory and time cost: a hash at the production cost (64 MiB) takes
    a good part of a second, and the demo accounts alone are six of them; `make test-fast` is meant for seconds.
    The service and browser tests sign in at the production cost."""
    monkeypatch.setattr(
        gateway.auth, "PasswordHasher", functools.partial(argon2.PasswordHasher, time_cost=1, memory_cost=1024)
    )
    yield
